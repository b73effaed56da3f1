import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.util.HashSet;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/** Reads one command per line and runs it on a set: "new N" starts a new HashSet<String>(N),
 * "concurrent" a ConcurrentHashMap.newKeySet() of Strings, "longs" one of Longs; "+key" adds a
 * key, "-key" removes one; "list", "clone" and "copy" print the iteration order of the set,
 * of its clone() and of new HashSet(set) (the last two for a HashSet), one key per line, then
 * an empty line. */
public class SetOps {
    @SuppressWarnings("unchecked")
    public static void main(String[] args) throws Exception {
        Set<Object> set = new HashSet<Object>();
        boolean longs = false;
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, "UTF-8"));
        StringBuilder out = new StringBuilder();
        for (String line; (line = in.readLine()) != null; ) {
            if (line.startsWith("+") || line.startsWith("-")) {
                String key = line.substring(1);
                Object k = longs ? (Object) Long.valueOf(key) : key;
                if (line.charAt(0) == '+') {
                    set.add(k);
                } else {
                    set.remove(k);
                }
            } else if (line.startsWith("new ")) {
                set = new HashSet<Object>(Integer.parseInt(line.substring(4)));
                longs = false;
            } else if (line.equals("concurrent") || line.equals("longs")) {
                set = ConcurrentHashMap.newKeySet();
                longs = line.equals("longs");
            } else {
                Iterable<Object> view = set;
                if (line.equals("clone")) {
                    view = (HashSet<Object>) ((HashSet<Object>) set).clone();
                } else if (line.equals("copy")) {
                    view = new HashSet<Object>(set);
                }
                for (Object key : view) {
                    out.append(key).append('\n');
                }
                out.append('\n');
            }
        }
        System.out.print(out);
    }
}
