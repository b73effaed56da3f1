import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.util.HashSet;

/** Reads cases of "+name" / "-name" lines, each case ended by an empty line: adds and removes
 * names in a new HashSet<String> (as ZooKeeper's DataTree keeps a session's ephemerals), then
 * prints the iteration order of its clone (what DataTree.getEphemerals returns), then an empty
 * line. */
public class HashSetCloneOrder {
    @SuppressWarnings("unchecked")
    public static void main(String[] args) throws Exception {
        HashSet<String> set = new HashSet<String>();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, "UTF-8"));
        for (String line; (line = in.readLine()) != null; ) {
            if (!line.isEmpty()) {
                if (line.charAt(0) == '+') {
                    set.add(line.substring(1));
                } else {
                    set.remove(line.substring(1));
                }
                continue;
            }
            for (String name : (HashSet<String>) set.clone()) {
                System.out.println(name);
            }
            System.out.println();
            set = new HashSet<String>();
        }
    }
}
