//! `tollgate cluster assign HOST:PORT ...`: asks each node its id, splits
//! the 16384 slots evenly among them in the order given, and pushes the
//! same map to every node.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::SLOTS;

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

/// One node, spoken to with RESP requests, one at a time.
struct Peer {
    reader: BufReader<TcpStream>,
}

impl Peer {
    fn connect(addr: &str, password: Option<&str>) -> Result<Peer, String> {
        let target = std::net::ToSocketAddrs::to_socket_addrs(addr)
            .map_err(|e| e.to_string())?
            .next()
            .ok_or("no address")?;
        let stream = TcpStream::connect_timeout(&target, Duration::from_secs(5))
            .map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        let mut peer = Peer {
            reader: BufReader::new(stream),
        };
        if let Some(pass) = password {
            peer.ask(&[b"AUTH", pass.as_bytes()])?;
        }
        Ok(peer)
    }

    /// Sends one request; answers a simple or bulk reply as text, an error
    /// reply as `Err`.
    fn ask(&mut self, args: &[&[u8]]) -> Result<String, String> {
        let request = crate::resp::encode_request(args);
        self.reader
            .get_mut()
            .write_all(&request)
            .map_err(|e| e.to_string())?;
        let mut line = String::new();
        if self
            .reader
            .read_line(&mut line)
            .map_err(|e| e.to_string())?
            == 0
        {
            return Err("connection closed without a reply".into());
        }
        let line = line.trim_end();
        match line.split_at_checked(1) {
            Some(("+", text)) => Ok(text.to_string()),
            Some(("-", error)) => Err(error.to_string()),
            Some(("$", len)) => {
                let len: usize = len.parse().map_err(|_| format!("bad reply {line}"))?;
                let mut bulk = vec![0; len + 2];
                self.reader
                    .read_exact(&mut bulk)
                    .map_err(|e| e.to_string())?;
                bulk.truncate(len);
                String::from_utf8(bulk).map_err(|_| "reply is not UTF-8".to_string())
            }
            _ => Err(format!("unexpected reply {line}")),
        }
    }
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
