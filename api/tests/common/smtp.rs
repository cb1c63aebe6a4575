//! A real SMTP server on 127.0.0.1 for the tests: speaks enough of RFC
//! 5321 for any client (EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT), keeps
//! every accepted message, or refuses every sender with a 554 when told
//! to.

use std::sync::{Arc, Mutex};

use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::TcpListener,
};

/// Every message accepted: (envelope recipients, raw data).
pub type Inbox = Arc<Mutex<Vec<(Vec<String>, String)>>>;

pub struct SmtpServer {
    pub port: u16,
    pub mails: Inbox,
    pub refuse: Arc<std::sync::atomic::AtomicBool>,
}

impl SmtpServer {
    pub async fn start(refuse: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let refuse = Arc::new(std::sync::atomic::AtomicBool::new(refuse));
        let (m, r) = (mails.clone(), refuse.clone());
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let (m, r) = (m.clone(), r.clone());
                tokio::spawn(async move {
                    let _ = session(conn, m, r).await;
                });
            }
        });
        Self {
            port,
            mails,
            refuse,
        }
    }

    pub fn received(&self) -> Vec<(Vec<String>, String)> {
        self.mails.lock().unwrap().clone()
    }
}

async fn session(
    conn: tokio::net::TcpStream,
    mails: Inbox,
    refuse: Arc<std::sync::atomic::AtomicBool>,
) -> std::io::Result<()> {
    let (read, mut write) = conn.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"220 test.local ESMTP ready\r\n").await?;
    let mut rcpt = Vec::new();
    while let Some(line) = lines.next_line().await? {
        let upper = line.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-test.local\r\n250 8BITMIME\r\n"
        } else if upper.starts_with("HELO") {
            b"250 test.local\r\n"
        } else if upper.starts_with("MAIL FROM") {
            rcpt.clear();
            if refuse.load(std::sync::atomic::Ordering::SeqCst) {
                b"554 5.7.1 no mail accepted from this relay today\r\n"
            } else {
                b"250 2.1.0 OK\r\n"
            }
        } else if upper.starts_with("RCPT TO") {
            rcpt.push(line[8..].trim().to_owned());
            b"250 2.1.5 OK\r\n"
        } else if upper == "DATA" {
            write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
            let mut data = String::new();
            while let Some(l) = lines.next_line().await? {
                if l == "." {
                    break;
                }
                data.push_str(
                    l.strip_prefix('.')
                        .filter(|_| l.starts_with(".."))
                        .unwrap_or(&l),
                );
                data.push('\n');
            }
            mails.lock().unwrap().push((rcpt.clone(), data));
            b"250 2.0.0 queued\r\n"
        } else if upper == "QUIT" {
            write.write_all(b"221 2.0.0 bye\r\n").await?;
            return Ok(());
        } else if upper == "RSET" || upper == "NOOP" {
            b"250 OK\r\n"
        } else {
            b"502 5.5.2 not implemented\r\n"
        };
        write.write_all(reply).await?;
    }
    Ok(())
}
