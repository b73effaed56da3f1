import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.util.Collections;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.zookeeper.data.Id;

/** Reads cases of "scheme<TAB>id" lines, each case ended by an empty line; adds each case's Ids
 * to the kind of set a ZooKeeper connection keeps its auth ids in, and prints the set in
 * iteration order (the order whoAmI reports), then an empty line. */
public class AuthSetOrder {
    public static void main(String[] args) throws Exception {
        Set<Id> ids = Collections.newSetFromMap(new ConcurrentHashMap<Id, Boolean>());
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, "UTF-8"));
        for (String line; (line = in.readLine()) != null; ) {
            if (!line.isEmpty()) {
                String[] parts = line.split("\t", 2);
                ids.add(new Id(parts[0], parts[1]));
                continue;
            }
            for (Id id : ids) {
                System.out.println(id.getScheme() + "\t" + id.getId());
            }
            System.out.println();
            ids = Collections.newSetFromMap(new ConcurrentHashMap<Id, Boolean>());
        }
    }
}
