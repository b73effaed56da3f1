import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.util.HashSet;

/** Reads one command per line and runs it on a java.util.HashSet<String>:
 * "new N" starts a new HashSet(N); "+name" adds a name, "-name" removes one; "list", "clone"
 * and "copy" print the iteration order of the set, of its clone() and of new HashSet(set),
 * one name per line, then an empty line. */
public class HashSetOps {
    @SuppressWarnings("unchecked")
    public static void main(String[] args) throws Exception {
        HashSet<String> set = new HashSet<String>();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, "UTF-8"));
        StringBuilder out = new StringBuilder();
        for (String line; (line = in.readLine()) != null; ) {
            if (line.startsWith("+")) {
                set.add(line.substring(1));
            } else if (line.startsWith("-")) {
                set.remove(line.substring(1));
            } else if (line.startsWith("new ")) {
                set = new HashSet<String>(Integer.parseInt(line.substring(4)));
            } else {
                Iterable<String> view = set;
                if (line.equals("clone")) {
                    view = (HashSet<String>) set.clone();
                } else if (line.equals("copy")) {
                    view = new HashSet<String>(set);
                }
                for (String name : view) {
                    out.append(name).append('\n');
                }
                out.append('\n');
            }
        }
        System.out.print(out);
    }
}
