//! The business's CRM endpoint for the flow through the stack: a local HTTP server that records
//! every POST and answers the status currently set.

use std::collections::HashMap;

/// One request the CRM receiver got.
#[derive(Debug, Clone)]
pub(crate) struct CrmCall {
    pub(crate) headers: HashMap<String, String>,
    pub(crate) body: String,
}

/// A local HTTP server standing in for the business's CRM endpoint (`CRM_WEBHOOK_URL`): records
/// every POST and answers the status currently set.
pub(crate) struct CrmReceiver {
    pub(crate) url: String,
    calls: std::sync::Arc<std::sync::Mutex<Vec<CrmCall>>>,
    status: std::sync::Arc<std::sync::atomic::AtomicU16>,
}

impl CrmReceiver {
    pub(crate) async fn start() -> CrmReceiver {
        use std::sync::atomic::{AtomicU16, Ordering};
        use std::sync::{Arc, Mutex};
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/crm", listener.local_addr().unwrap());
        let calls: Arc<Mutex<Vec<CrmCall>>> = Arc::default();
        let status = Arc::new(AtomicU16::new(200));
        let (c, s) = (calls.clone(), status.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (c, s) = (c.clone(), s.clone());
                tokio::spawn(async move {
                    let mut reader = BufReader::new(stream);
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let mut headers = HashMap::new();
                        loop {
                            let mut h = String::new();
                            reader.read_line(&mut h).await.unwrap_or(0);
                            let h = h.trim_end();
                            if h.is_empty() {
                                break;
                            }
                            if let Some((k, v)) = h.split_once(':') {
                                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                            }
                        }
                        let len: usize = headers
                            .get("content-length")
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                        let mut body = vec![0; len.min(1 << 20)];
                        if reader.read_exact(&mut body).await.is_err() {
                            return;
                        }
                        c.lock().unwrap().push(CrmCall {
                            headers,
                            body: String::from_utf8_lossy(&body).into_owned(),
                        });
                        let code = s.load(Ordering::SeqCst);
                        let answer = format!(
                            "HTTP/1.1 {code} X\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{{}}"
                        );
                        if reader.get_mut().write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        CrmReceiver { url, calls, status }
    }

    pub(crate) fn calls(&self) -> Vec<CrmCall> {
        self.calls.lock().unwrap().clone()
    }

    pub(crate) fn answer(&self, status: u16) {
        self.status
            .store(status, std::sync::atomic::Ordering::SeqCst);
    }
}
