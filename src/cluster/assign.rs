//! `tollgate cluster assign HOST:PORT ...`: asks each node its id, splits
//! the 16384 slots evenly among them in the order given, and pushes the
//! same map to every node.

use super::SLOTS;
use super::peer::Peer;

/// The map of `nodes` (id, ip, port), slots split evenly in their order,
/// in the JSON `TOLLGATE.CLUSTER CONFIG` takes.
pub fn even_map(nodes: &[(String, String, u16)]) -> String {
    let n = nodes.len().max(1);
    let shards: Vec<serde_json::Value> = nodes
        .iter()
        .enumerate()
        .map(|(i, (id, ip, port))| {
            let start = i * SLOTS / n;
            let end = (i + 1) * SLOTS / n - 1;
            serde_json::json!({
                "slot_ranges": [{"start": start, "end": end}],
                "master": {"id": id, "ip": ip, "port": port},
                "replicas": [],
                "migrations": [],
            })
        })
        .collect();
    serde_json::Value::Array(shards).to_string()
}

/// Assigns the slots of `addrs` (each `ip:port`, as clients reach it):
/// answers a line per node saying what it got.
pub fn assign(addrs: &[String], password: Option<&str>) -> Result<Vec<String>, String> {
    if addrs.is_empty() {
        return Err("name the nodes: tollgate cluster assign HOST:PORT ...".into());
    }
    let mut peers = Vec::new();
    let mut nodes = Vec::new();
    for addr in addrs {
        let (ip, port) = addr
            .rsplit_once(':')
            .and_then(|(ip, port)| Some((ip.trim_matches(['[', ']']), port.parse::<u16>().ok()?)))
            .ok_or_else(|| format!("{addr}: expected HOST:PORT"))?;
        let mut peer = Peer::connect(addr, password).map_err(|e| format!("{addr}: {e}"))?;
        let id = peer
            .ask(&[b"TOLLGATE.CLUSTER", b"MYID"])
            .map_err(|e| format!("{addr}: {e}"))?;
        nodes.push((id, ip.to_string(), port));
        peers.push(peer);
    }
    let map = even_map(&nodes);
    let mut said = Vec::new();
    for ((peer, addr), (id, _, _)) in peers.iter_mut().zip(addrs).zip(&nodes) {
        peer.ask(&[b"TOLLGATE.CLUSTER", b"CONFIG", map.as_bytes()])
            .map_err(|e| format!("{addr}: {e}"))?;
        said.push(format!("{addr} ({id}): map applied"));
    }
    let n = nodes.len();
    for (i, line) in said.iter_mut().enumerate() {
        line.push_str(&format!(
            ", owns slots {}-{}",
            i * SLOTS / n,
            (i + 1) * SLOTS / n - 1
        ));
    }
    Ok(said)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::SlotMap;

    #[test]
    fn an_even_map_covers_every_slot_once() {
        let nodes: Vec<(String, String, u16)> = (0..3u16)
            .map(|i| (format!("{i}").repeat(40), "10.0.0.1".to_string(), 7000 + i))
            .collect();
        let map = SlotMap::parse(&even_map(&nodes), &"1".repeat(40)).unwrap();
        assert_eq!(
            map.ranges(),
            vec![(0, 5460, 0), (5461, 10921, 1), (10922, 16383, 2)]
        );
        assert_eq!(map.shards[2].master.port, 7002);
    }
}
