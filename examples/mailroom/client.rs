//! A minimal HTTP/1.1 client over hyper whose connections leave from a
//! chosen loopback source address (anything in 127.0.0.0/8 on Linux), so
//! that one process can play many clients with many IP addresses. Or the
//! same requests handed to a service in this process ([`Link::Local`]), as
//! `tests/demo_seeds.rs` plays the demo in simulated time.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// Longest wait for one answer.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A response: status and body.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub body: Bytes,
}

impl Resp {
    /// The body as JSON (`Null` if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// Refused by the guard (the application itself never answers 429).
    pub fn refused(&self) -> bool {
        self.status == 429
    }
}

/// Sends one request from a source address to a service in this process.
pub type Local = Arc<
    dyn Fn(
            Ipv4Addr,
            http::Request<Full<Bytes>>,
        ) -> Pin<Box<dyn Future<Output = Result<Resp, Error>> + Send>>
        + Send
        + Sync,
>;

/// Where a client's requests go.
#[derive(Clone)]
pub enum Link {
    /// A server over HTTP/1.1.
    Http(SocketAddr),
    /// A service in this process.
    Local(Local),
}

impl From<SocketAddr> for Link {
    fn from(a: SocketAddr) -> Self {
        Self::Http(a)
    }
}

/// One client: a keep-alive connection from `source` to the server (or its
/// requests handed to a [`Link::Local`] service with `source` as their
/// peer), and the Bearer token once logged in.
pub struct Client {
    link: Link,
    source: Ipv4Addr,
    send: Option<SendRequest<Full<Bytes>>>,
    pub token: Option<String>,
    pub id: Option<u64>,
}

pub type Error = Box<dyn std::error::Error + Send + Sync>;

impl Client {
    /// A client whose connections come from `source`.
    pub fn new(link: impl Into<Link>, source: Ipv4Addr) -> Self {
        Self {
            link: link.into(),
            source,
            send: None,
            token: None,
            id: None,
        }
    }

    /// Moves to another source address (the next request reconnects).
    pub fn set_source(&mut self, source: Ipv4Addr) {
        if source != self.source {
            self.source = source;
            self.send = None;
        }
    }

    async fn connect(
        &mut self,
        server: SocketAddr,
    ) -> Result<&mut SendRequest<Full<Bytes>>, Error> {
        if self.send.as_ref().is_none_or(|s| s.is_closed()) {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(self.source.into(), 0))?;
            let stream = tokio::time::timeout(TIMEOUT, socket.connect(server)).await??;
            stream.set_nodelay(true)?;
            let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            self.send = Some(send);
        }
        Ok(self.send.as_mut().expect("connected"))
    }

    async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Resp, Error> {
        let host = match &self.link {
            Link::Http(server) => server.to_string(),
            Link::Local(_) => "mailroom.local".to_owned(),
        };
        let mut builder = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, host);
        if let Some(t) = &self.token {
            builder = builder.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let body = match body {
            Some(v) => {
                builder = builder.header(http::header::CONTENT_TYPE, "application/json");
                Full::new(Bytes::from(serde_json::to_vec(v)?))
            }
            None => Full::new(Bytes::new()),
        };
        let req = builder.body(body)?;
        let server = match &self.link {
            Link::Http(server) => *server,
            Link::Local(local) => return local(self.source, req).await,
        };
        let send = self.connect(server).await?;
        let exchange = async {
            send.ready().await?;
            let res = send.send_request(req).await?;
            let status = res.status().as_u16();
            let body = res.into_body().collect().await?.to_bytes();
            Ok::<_, Error>(Resp { status, body })
        };
        match tokio::time::timeout(TIMEOUT, exchange).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                self.send = None;
                Err(e)
            }
            Err(_) => {
                self.send = None;
                Err(format!("{method} {path}: no answer within {TIMEOUT:?}").into())
            }
        }
    }

    /// `GET path`.
    pub async fn get(&mut self, path: &str) -> Result<Resp, Error> {
        self.request("GET", path, None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&mut self, path: &str, body: &Value) -> Result<Resp, Error> {
        self.request("POST", path, Some(body)).await
    }

    /// Logs in; on 200 keeps the token and id.
    pub async fn login(&mut self, email: &str, password: &str) -> Result<Resp, Error> {
        let r = self
            .post(
                "/api/login",
                &serde_json::json!({ "email": email, "password": password }),
            )
            .await?;
        if r.status == 200 {
            let v = r.json();
            self.token = v["token"].as_str().map(str::to_owned);
            self.id = v["id"].as_u64();
        }
        Ok(r)
    }
}

/// Percent-encodes a query value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
