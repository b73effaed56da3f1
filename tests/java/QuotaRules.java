import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.HexFormat;
import org.apache.zookeeper.StatsTrack;
import org.apache.zookeeper.common.PathTrie;

/** ZooKeeper 3.8.0's own quota classes on the lines of stdin, one answer line each (hex for
 * bytes and strings, "!" where the call throws). Used by tests/test_quotas.py.
 *
 * <pre>
 * S hex     new StatsTrack(bytes): its getStatsBytes(), then those after
 *           setCount(getCount() + 1) and setBytes(getBytes() - 7), space-separated
 * A hex     trie.addPath(string)      -> "ok"
 * D hex     trie.deletePath(string)   -> "ok"
 * F hex     trie.findMaxPrefix(string)
 * R         a fresh trie              -> "ok"
 * </pre> */
public class QuotaRules {
    public static void main(String[] args) throws Exception {
        HexFormat hex = HexFormat.of();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.US_ASCII));
        StringBuilder out = new StringBuilder();
        PathTrie trie = new PathTrie();
        for (String line; (line = in.readLine()) != null; ) {
            String op = line.substring(0, 1);
            byte[] arg = line.length() > 2 ? hex.parseHex(line.substring(2)) : new byte[0];
            String text = new String(arg, StandardCharsets.UTF_8);
            String answer;
            try {
                switch (op) {
                    case "S": {
                        StatsTrack stats = new StatsTrack(arg);
                        String first = hex.formatHex(stats.getStatsBytes());
                        stats.setCount(stats.getCount() + 1);
                        stats.setBytes(stats.getBytes() - 7);
                        answer = first + " " + hex.formatHex(stats.getStatsBytes());
                        break;
                    }
                    case "A": trie.addPath(text); answer = "ok"; break;
                    case "D": trie.deletePath(text); answer = "ok"; break;
                    case "F": answer = hex.formatHex(trie.findMaxPrefix(text).getBytes(StandardCharsets.UTF_8)); break;
                    case "R": trie = new PathTrie(); answer = "ok"; break;
                    default: throw new IllegalArgumentException(line);
                }
            } catch (RuntimeException e) {
                answer = "!";
            }
            out.append(answer).append('\n');
        }
        System.out.print(out);
    }
}
