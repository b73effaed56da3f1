import java.io.BufferedReader;
import java.io.ByteArrayInputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.util.HexFormat;
import javax.security.auth.x500.X500Principal;

/** Reads lines of hex, each a DER X.500 Name (or, with the argument "cert", a DER certificate),
 * and for each writes one line: the hex of the UTF-8 bytes of new X500Principal(der).getName()
 * (of the certificate's subject, as CertificateFactory reads it), "U16 " and the hex of its
 * UTF-16BE code units when it holds a lone surrogate (which UTF-8 cannot carry), or "ERR " and
 * the exception when Java throws. */
public class X500Names {
    public static void main(String[] args) throws Exception {
        boolean certs = args.length > 0 && args[0].equals("cert");
        CertificateFactory factory = CertificateFactory.getInstance("X.509");
        HexFormat hex = HexFormat.of();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, "UTF-8"));
        for (String line; (line = in.readLine()) != null; ) {
            String answer;
            try {
                byte[] der = hex.parseHex(line.trim());
                String name = certs
                    ? ((X509Certificate) factory.generateCertificate(new ByteArrayInputStream(der)))
                        .getSubjectX500Principal().getName()
                    : new X500Principal(der).getName();
                byte[] utf8 = name.getBytes(StandardCharsets.UTF_8);
                answer = new String(utf8, StandardCharsets.UTF_8).equals(name)
                    ? hex.formatHex(utf8)
                    : "U16 " + hex.formatHex(name.getBytes(StandardCharsets.UTF_16BE));
            } catch (Exception e) {
                Throwable cause = e;
                StringBuilder message = new StringBuilder();
                for (; cause != null; cause = cause.getCause()) {
                    message.append(message.length() == 0 ? "" : " <- ").append(cause);
                }
                answer = "ERR " + message.toString().replace('\n', ' ').replace('\r', ' ');
            }
            System.out.println(answer);
            System.out.flush();
        }
    }
}
