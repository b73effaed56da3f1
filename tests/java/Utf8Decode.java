import java.io.BufferedOutputStream;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;

/** Reads byte strings as hex, one per line, and for each prints the UTF-16 code units of
 * {@code new String(bytes, StandardCharsets.UTF_8)} (what ZooKeeper's jute readString does)
 * as four lower-case hex digits each, one line per input line (an empty line for an empty
 * string). Used by tests/test_javautf8.py. */
public class Utf8Decode {
    private static final byte[] HEX = "0123456789abcdef".getBytes(StandardCharsets.US_ASCII);

    private static int nibble(char c) {
        int v = Character.digit(c, 16);
        if (v < 0) {
            throw new IllegalArgumentException("not hex: " + c);
        }
        return v;
    }

    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(
            new InputStreamReader(System.in, StandardCharsets.US_ASCII), 1 << 16);
        OutputStream out = new BufferedOutputStream(System.out, 1 << 16);
        byte[] line = new byte[256];
        for (String hex; (hex = in.readLine()) != null; ) {
            byte[] raw = new byte[hex.length() / 2];
            for (int i = 0; i < raw.length; i++) {
                raw[i] = (byte) (nibble(hex.charAt(2 * i)) << 4 | nibble(hex.charAt(2 * i + 1)));
            }
            String s = new String(raw, StandardCharsets.UTF_8);
            if (line.length < 4 * s.length() + 1) {
                line = new byte[4 * s.length() + 1];
            }
            int n = 0;
            for (int i = 0; i < s.length(); i++) {
                char c = s.charAt(i);
                line[n++] = HEX[c >> 12 & 15];
                line[n++] = HEX[c >> 8 & 15];
                line[n++] = HEX[c >> 4 & 15];
                line[n++] = HEX[c & 15];
            }
            line[n++] = '\n';
            out.write(line, 0, n);
        }
        out.flush();
    }
}
