//! Another node, spoken to with RESP requests one at a time, from a plain
//! thread (the assign helper, a slot migration).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One node, spoken to with RESP requests, one at a time.
pub struct Peer {
    reader: BufReader<TcpStream>,
}

impl Peer {
    pub fn connect(addr: &str, password: Option<&str>) -> Result<Peer, String> {
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

    /// Sends one request; answers a simple, integer or bulk reply as text,
    /// an error reply as `Err`.
    pub fn ask(&mut self, args: &[&[u8]]) -> Result<String, String> {
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
            Some(("+" | ":", text)) => Ok(text.to_string()),
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
