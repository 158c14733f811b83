//! Another node, spoken to with RESP requests one at a time, from a plain
//! thread (the assign helper, a slot migration).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Why a request got no answer it could use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failed {
    /// The node answered with an error reply (it did what that says).
    Refused(String),
    /// No usable answer came (the node may or may not have done it).
    Lost(String),
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failed::Refused(e) | Failed::Lost(e) => f.write_str(e),
        }
    }
}

/// One node, spoken to with RESP requests, one at a time.
#[derive(Debug)]
pub struct Peer {
    reader: BufReader<TcpStream>,
}

impl Peer {
    pub fn connect(addr: &str, password: Option<&str>) -> Result<Peer, Failed> {
        let lost = |e: std::io::Error| Failed::Lost(e.to_string());
        let target = std::net::ToSocketAddrs::to_socket_addrs(addr)
            .map_err(lost)?
            .next()
            .ok_or_else(|| Failed::Lost("no address".into()))?;
        let stream = TcpStream::connect_timeout(&target, Duration::from_secs(5)).map_err(lost)?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(lost)?;
        let mut peer = Peer {
            reader: BufReader::new(stream),
        };
        if let Some(pass) = password {
            peer.ask(&[b"AUTH", pass.as_bytes()])?;
        }
        Ok(peer)
    }

    /// Sends one request; answers a simple, integer or bulk reply as text,
    /// an error reply as [`Failed::Refused`].
    pub fn ask(&mut self, args: &[&[u8]]) -> Result<String, Failed> {
        let bytes = self.ask_bytes(args)?;
        String::from_utf8(bytes).map_err(|_| Failed::Lost("reply is not UTF-8".into()))
    }

    /// [`Peer::ask`], the reply as bytes (a bulk reply may hold any).
    pub fn ask_bytes(&mut self, args: &[&[u8]]) -> Result<Vec<u8>, Failed> {
        let lost = |e: String| Failed::Lost(e);
        let request = crate::resp::encode_request(args);
        self.reader
            .get_mut()
            .write_all(&request)
            .map_err(|e| lost(e.to_string()))?;
        let mut line = String::new();
        let read = self.reader.read_line(&mut line);
        if read.map_err(|e| lost(e.to_string()))? == 0 {
            return Err(lost("connection closed without a reply".into()));
        }
        let line = line.trim_end();
        match line.split_at_checked(1) {
            Some(("+" | ":", text)) => Ok(text.as_bytes().to_vec()),
            Some(("-", error)) => Err(Failed::Refused(error.to_string())),
            Some(("$", len)) => {
                let len: usize = len.parse().map_err(|_| lost(format!("bad reply {line}")))?;
                let mut bulk = vec![0; len + 2];
                self.reader
                    .read_exact(&mut bulk)
                    .map_err(|e| lost(e.to_string()))?;
                bulk.truncate(len);
                Ok(bulk)
            }
            _ => Err(lost(format!("unexpected reply {line}"))),
        }
    }
}
