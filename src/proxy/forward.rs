//! [`Upstream`]: the tower service behind the guard that forwards a request
//! to the upstream and streams its answer back: hop-by-hop headers removed
//! (RFC 9110 section 7.6.1), forwarding headers appended, upgrades
//! (WebSocket) passed through, 502 and 504 for an upstream that is not
//! there or too slow; and the upstream's word on the answer (its outcome,
//! owner and account headers) read into the response and stripped.

use std::cell::RefCell;
use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use arc_swap::ArcSwap;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::account::Caller;
use super::live::{Live, UpstreamClient};
use super::pool::{Failed, Pool, Sender, TimedOut, UpstreamBody};
use crate::actor::{Cidr, in_any};
use crate::{AccountId, GuardBody, Outcome, Owner};

/// A response body: the upstream's, streamed, or one the proxy wrote.
pub(crate) type ProxyBody = Either<UpstreamBody, Full<Bytes>>;

/// Headers that concern one connection only (RFC 9110 section 7.6.1,
/// plus the ones proxies have long treated so). Not `Trailer`: it is
/// end-to-end (RFC 9110 section 6.6.2), and hyper sends an HTTP/1.1
/// message's trailer fields only when `Trailer` names them, so removing it
/// would drop the trailers. A `static`: a `const` array is built (and
/// dropped) again at each use.
static HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRANSFER_ENCODING,
];

/// The TCP peer of a request's connection, when the guard was given
/// another client address (`client_ip_header`: the address an edge in
/// front resolved): the hop the forwarding headers append. Without it the
/// peer is the guard's `PeerAddr`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TcpPeer(pub(crate) IpAddr);

/// What every request to the upstream shares.
pub(crate) struct Shared {
    /// The upstream's scheme and authority.
    pub(crate) authority: http::uri::Authority,
    /// A path prefix, without its trailing slash ("" for none).
    pub(crate) prefix: String,
    /// HTTP/2 to the upstream (prior knowledge).
    pub(crate) h2c: bool,
    /// The client, timeouts and header names in force (a reload swaps
    /// them).
    pub(crate) live: Arc<ArcSwap<Live>>,
    pub(crate) tunnels: Arc<Tunnels>,
}

/// The upgraded connections (WebSocket tunnels) open now: a stop waits for
/// them through its drain, then closes those still open (a tunnel is no
/// longer the connection's that hyper's graceful shutdown watches).
pub(crate) struct Tunnels {
    open: AtomicUsize,
    idle: tokio::sync::Notify,
    closed: tokio::sync::watch::Sender<bool>,
}

/// One open tunnel, counted until it is dropped.
struct Open(Arc<Tunnels>);

impl Drop for Open {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Tunnels {
    pub(crate) fn new() -> Self {
        Self {
            open: AtomicUsize::new(0),
            idle: tokio::sync::Notify::new(),
            closed: tokio::sync::watch::channel(false).0,
        }
    }

    /// Runs `tunnel` until it ends or the tunnels are closed.
    fn spawn(self: &Arc<Self>, tunnel: impl Future<Output = ()> + Send + 'static) {
        self.open.fetch_add(1, Ordering::SeqCst);
        let open = Open(self.clone());
        let mut closed = self.closed.subscribe();
        tokio::spawn(async move {
            let _open = open;
            tokio::select! {
                () = tunnel => {}
                _ = closed.wait_for(|c| *c) => {}
            }
        });
    }

    /// Once no tunnel is open.
    pub(crate) async fn drained(&self) {
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.open.load(Ordering::SeqCst) == 0 {
                return;
            }
            idle.await;
        }
    }

    /// Closes every tunnel open now or opened later.
    pub(crate) fn close(&self) {
        self.closed.send_replace(true);
    }
}

/// The forwarding service (cheap to clone).
#[derive(Clone)]
pub(crate) struct Upstream(pub(crate) Arc<Shared>);

impl tower_service::Service<Request<GuardBody<Incoming>>> for Upstream {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<GuardBody<Incoming>>) -> Self::Future {
        let shared = self.0.clone();
        Box::pin(async move { Ok(shared.forward(req).await) })
    }
}

/// A short answer of the proxy's own.
pub(crate) fn answer(status: StatusCode, text: &'static str) -> Response<ProxyBody> {
    let mut res = Response::new(Either::Right(Full::new(Bytes::from_static(
        text.as_bytes(),
    ))));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

impl Shared {
    /// The request's target on the upstream: the prefix, then the
    /// client's path and query (taken as they are, not parsed again, when
    /// there is no prefix); in absolute form (the upstream's scheme and
    /// authority first) for HTTP/2, in origin form (as HTTP/1.1 sends it
    /// to a server) otherwise.
    fn upstream_uri(&self, client: Uri) -> Option<Uri> {
        let mut parts = client.into_parts();
        let path = parts
            .path_and_query
            .take()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let (scheme, authority) = if self.h2c {
            (Some(Scheme::HTTP), Some(self.authority.clone()))
        } else {
            (None, None)
        };
        parts.scheme = scheme;
        parts.authority = authority;
        parts.path_and_query = Some(if self.prefix.is_empty() {
            path
        } else {
            let mut joined = String::with_capacity(self.prefix.len() + path.as_str().len());
            joined.push_str(&self.prefix);
            joined.push_str(path.as_str());
            PathAndQuery::from_maybe_shared(joined).ok()?
        });
        Uri::from_parts(parts).ok()
    }

    async fn forward(&self, mut req: Request<GuardBody<Incoming>>) -> Response<ProxyBody> {
        let ext = req.extensions();
        let peer = (ext.get::<TcpPeer>().map(|p| p.0))
            .or_else(|| ext.get::<crate::PeerAddr>().map(|p| p.0.ip()));
        let upgrade = wants_upgrade(req.headers());
        // One reload's settings for the whole request.
        let live = self.live.load_full();
        // Named only if the upstream answers `own` (a JWT is verified once,
        // by the guard, otherwise).
        let caller = live.accounts.caller(req.headers());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let (mut parts, body) = req.into_parts();
        // An HTTP/2 client names the host in the URI, not in `Host`; an
        // HTTP/1.0 client may name none (the upstream's, then).
        if !parts.headers.contains_key(header::HOST) {
            let authority = parts.uri.authority().unwrap_or(&self.authority);
            if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
                parts.headers.insert(header::HOST, host);
            }
        }
        parts.uri = match self.upstream_uri(std::mem::take(&mut parts.uri)) {
            Some(u) => u,
            None => return answer(StatusCode::BAD_REQUEST, "bad request target\n"),
        };
        parts.version = if self.h2c {
            http::Version::HTTP_2
        } else {
            http::Version::HTTP_11
        };
        let trailers = accepts_trailers(&parts.headers);
        strip_hop_by_hop(&mut parts.headers, upgrade);
        if trailers && !upgrade {
            // The client takes trailers, and the proxy passes them on: it
            // says so upstream, for itself (hyper, among others, sends an
            // answer's trailers only to a request that takes them; RFC 9110
            // section 10.1.4 wants the `TE` connection option with it).
            // Nothing else of the client's `TE` goes: its transfer codings
            // are its own connection's.
            parts
                .headers
                .insert(header::TE, HeaderValue::from_static("trailers"));
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("te"));
        }
        if let Some(ip) = peer {
            forwarding_headers(&live.trusted, &mut parts.headers, ip);
        }
        let out = Request::from_parts(parts, body);
        let res = match send(&live.client, out, live.timeout).await {
            Ok(res) => res,
            Err(e) if !e.is::<TimedOut>() => {
                tracing::warn!(target: "enumguard::proxy", error = %e, "upstream unreachable: 502");
                return answer(
                    StatusCode::BAD_GATEWAY,
                    "502 bad gateway: the upstream is unreachable\n",
                );
            }
            Err(_) => {
                tracing::warn!(target: "enumguard::proxy", secs = live.timeout.as_secs(), "upstream timed out: 504");
                return answer(
                    StatusCode::GATEWAY_TIMEOUT,
                    "504 gateway timeout: the upstream did not answer in time\n",
                );
            }
        };
        let (res, mut back) = res;
        let (mut parts, body) = res.into_parts();
        let switching = parts.status == StatusCode::SWITCHING_PROTOCOLS;
        if switching {
            // The connection is the tunnel's now, never pooled again (its
            // sender kept as long as the tunnel, as the upgrade wants).
            let sender = back.take();
            if let Some(client) = client_upgrade {
                let mut upstream_res = Response::from_parts(parts.clone(), ());
                let upstream = hyper::upgrade::on(&mut upstream_res);
                self.tunnels.spawn(async move {
                    let _sender = sender;
                    if let (Ok(c), Ok(u)) = (client.await, upstream.await) {
                        let (mut c, mut u) = (TokioIo::new(c), TokioIo::new(u));
                        let _ = tokio::io::copy_bidirectional(&mut c, &mut u).await;
                    }
                });
            }
        }
        strip_hop_by_hop(&mut parts.headers, switching);
        read_upstream_word(&live, &mut parts, &caller);
        Response::from_parts(parts, Either::Left(UpstreamBody::new(body, back)))
    }
}

/// `req` to the upstream: the answer, and (HTTP/1.1) the pooled connection
/// its body gives back; [`TimedOut`] when its head did not come within
/// `timeout` (the pool's connections time their requests themselves, with
/// the same timeout: a change of it makes a new pool).
async fn send(
    client: &UpstreamClient,
    req: Request<GuardBody<Incoming>>,
    timeout: std::time::Duration,
) -> Result<(Response<Incoming>, Option<(Arc<Pool>, Sender)>), Failed> {
    match client {
        UpstreamClient::Http1(pool) => {
            let (res, tx) = pool.send(req).await?;
            Ok((res, Some((pool.clone(), tx))))
        }
        // Boxed: the HTTP/1.1 path's future stays small.
        UpstreamClient::H2c(c) => {
            match Box::pin(tokio::time::timeout(timeout, c.request(req))).await {
                Ok(res) => Ok((res?, None)),
                Err(_) => Err(Box::new(TimedOut)),
            }
        }
    }
}

/// `X-Forwarded-For`, `X-Forwarded-Proto` and `Forwarded`: appended to
/// what a trusted proxy in front sent, replacing what anyone else sent
/// (a client's own forwarding headers are not passed on as if a proxy
/// had written them). Written byte by byte: this runs on every request;
/// without a chain to extend, the values depend on the peer alone and are
/// those of its last request ([`own_values`]).
fn forwarding_headers(proxies: &[Cidr], headers: &mut HeaderMap, peer: IpAddr) {
    let trusted = !proxies.is_empty() && in_any(proxies, peer);
    let chain = trusted
        && (headers.contains_key(&X_FORWARDED_FOR) || headers.contains_key(header::FORWARDED));
    if !chain {
        let (xff, fwd) = own_values(peer);
        headers.insert(X_FORWARDED_FOR, xff);
        headers.insert(header::FORWARDED, fwd);
        if !trusted || !headers.contains_key(&X_FORWARDED_PROTO) {
            headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
        }
        return;
    }
    let mut xff = Vec::with_capacity(48);
    let mut fwd = Vec::with_capacity(64);
    if trusted {
        for (name, out) in [(&X_FORWARDED_FOR, &mut xff), (&header::FORWARDED, &mut fwd)] {
            for v in headers.get_all(name) {
                if v.to_str().is_ok() {
                    out.extend_from_slice(v.as_bytes());
                    out.extend_from_slice(b", ");
                }
            }
        }
    }
    push_ip(&mut xff, peer);
    push_forwarded(&mut fwd, peer);
    for (name, value) in [(X_FORWARDED_FOR, xff), (header::FORWARDED, fwd)] {
        if let Ok(v) = HeaderValue::from_maybe_shared(Bytes::from(value)) {
            headers.insert(name, v);
        }
    }
    if !trusted || !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    }
}

thread_local! {
    /// The forwarding values written last on this thread, and for whom.
    static OWN_VALUES: RefCell<Option<(IpAddr, HeaderValue, HeaderValue)>> =
        const { RefCell::new(None) };
}

/// `X-Forwarded-For` and `Forwarded` for `peer` with no chain before it:
/// those of the last request from the same peer (most requests come from
/// the peer of the one before: a keep-alive connection, a load balancer),
/// shared (a reference count each), or written anew.
fn own_values(peer: IpAddr) -> (HeaderValue, HeaderValue) {
    OWN_VALUES.with(|last| {
        let mut last = last.borrow_mut();
        if let Some((ip, xff, fwd)) = &*last {
            if *ip == peer {
                return (xff.clone(), fwd.clone());
            }
        }
        let mut xff = Vec::with_capacity(40);
        push_ip(&mut xff, peer);
        let mut fwd = Vec::with_capacity(56);
        push_forwarded(&mut fwd, peer);
        // An address and these bytes are always a valid value.
        let value = |v: Vec<u8>| {
            HeaderValue::from_maybe_shared(Bytes::from(v))
                .unwrap_or_else(|_| HeaderValue::from_static(""))
        };
        let (xff, fwd) = (value(xff), value(fwd));
        *last = Some((peer, xff.clone(), fwd.clone()));
        (xff, fwd)
    })
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// The `Forwarded` element for `peer` (RFC 7239: an IPv6 address quoted
/// in brackets): `for=...;proto=http`.
fn push_forwarded(out: &mut Vec<u8>, peer: IpAddr) {
    out.extend_from_slice(b"for=");
    match peer {
        IpAddr::V4(_) => push_ip(out, peer),
        IpAddr::V6(_) => {
            out.extend_from_slice(b"\"[");
            push_ip(out, peer);
            out.extend_from_slice(b"]\"");
        }
    }
    out.extend_from_slice(b";proto=http");
}

/// `ip` as text (`Display`'s form), an IPv4 address without the
/// formatting machinery.
fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, n) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                if n >= 100 {
                    out.push(b'0' + n / 100);
                }
                if n >= 10 {
                    out.push(b'0' + n / 10 % 10);
                }
                out.push(b'0' + n % 10);
            }
        }
        IpAddr::V6(v6) => {
            use std::io::Write;
            let _ = write!(out, "{v6}");
        }
    }
}

/// What the upstream said of its answer, as headers the client never
/// sees: the outcome (`hit`, `miss`, `denied`, `own`, `known`), the owner, and
/// (with a response-header account source) the account the session is
/// now bound to.
fn read_upstream_word(live: &Live, parts: &mut http::response::Parts, caller: &Caller) {
    if let Some(v) = parts.headers.remove(&live.outcome_header) {
        match v.as_bytes() {
            b"hit" => {
                parts.extensions.insert(Outcome::Hit);
            }
            b"miss" => {
                parts.extensions.insert(Outcome::Miss);
            }
            b"denied" => {
                parts.extensions.insert(Outcome::Denied);
            }
            b"own" => {
                if let Some(a) = live.accounts.account_of(caller) {
                    parts.extensions.insert(Owner(a));
                }
            }
            // A target the caller knows (its contact): never a guess.
            b"known" => {
                parts.extensions.insert(crate::Known);
            }
            _ => {}
        }
    }
    if let Some(v) = parts.headers.remove(&live.owner_header) {
        if !v.is_empty() {
            parts.extensions.insert(Owner(AccountId::new(v.as_bytes())));
        }
    }
    live.accounts
        .bind_from_response(&mut parts.headers, caller.session);
}

/// Whether `name` (lowercase, as a `HeaderName` is) is one of
/// [`HOP_BY_HOP`] or `Upgrade`: one comparison by length and bytes, not
/// eight of names.
fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// Whether the request asks to switch protocols (`Connection: upgrade`
/// with an `Upgrade` header: a WebSocket handshake).
fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && connection_tokens(headers).any(|t| t.eq_ignore_ascii_case("upgrade"))
}

/// Whether the request's `TE` says it takes trailer fields.
fn accepts_trailers(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            t.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("trailers"))
        })
}

/// The tokens of every `Connection` header.
fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Removes the hop-by-hop headers, and those `Connection` names; an
/// upgrade keeps `Upgrade` and `Connection: upgrade`.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    // One look at each name first: most messages have none of them, and
    // a removal hashes the name even when it is not there.
    let any = headers.keys().any(|n| is_hop_by_hop(n.as_str()));
    if !any {
        return;
    }
    let named: Vec<HeaderName> = connection_tokens(headers)
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    for n in named {
        if !(upgrade && n == header::UPGRADE) {
            headers.remove(&n);
        }
    }
    for n in &HOP_BY_HOP {
        headers.remove(n);
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_removed() {
        let mut h = HeaderMap::new();
        h.append(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, X-Secret"),
        );
        h.append(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        let mut plain = h.clone();
        strip_hop_by_hop(&mut plain, false);
        assert_eq!(plain.len(), 1, "{plain:?}");
        assert!(plain.contains_key("x-kept"));
        assert!(wants_upgrade(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h[header::UPGRADE], "websocket");
        assert_eq!(h[header::CONNECTION], "upgrade");
        assert!(!h.contains_key("x-secret") && !h.contains_key("keep-alive"));
    }

    #[test]
    fn the_quick_look_knows_every_hop_by_hop_name_and_no_other() {
        for n in HOP_BY_HOP.iter().chain([&header::UPGRADE]) {
            assert!(is_hop_by_hop(n.as_str()), "{n}");
        }
        for n in ["trailer", "host", "x-kept", "forwarded", "tee", "upgrades"] {
            assert!(!is_hop_by_hop(n), "{n}");
        }
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "9.10.99.100",
            "255.255.255.255",
            "::1",
            "2001:db8::7",
            "::ffff:10.0.0.1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut out = Vec::new();
            push_ip(&mut out, ip);
            assert_eq!(String::from_utf8(out).unwrap(), ip.to_string());
        }
    }

    #[test]
    fn forwarding_headers_replace_an_untrusted_chain_and_extend_a_trusted_one() {
        let trusted = ["10.0.0.0/8".parse::<crate::actor::Cidr>().unwrap()];
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", HeaderValue::from_static("1.2.3.4"));
        h.append("x-forwarded-for", HeaderValue::from_static("5.6.7.8"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        let mut untrusted = h.clone();
        forwarding_headers(&trusted, &mut untrusted, "192.0.2.1".parse().unwrap());
        assert_eq!(untrusted["x-forwarded-for"], "192.0.2.1");
        assert_eq!(untrusted[header::FORWARDED], "for=192.0.2.1;proto=http");
        assert_eq!(untrusted["x-forwarded-proto"], "http");
        forwarding_headers(&trusted, &mut h, "10.1.2.3".parse().unwrap());
        assert_eq!(h["x-forwarded-for"], "1.2.3.4, 5.6.7.8, 10.1.2.3");
        assert_eq!(h[header::FORWARDED], "for=10.1.2.3;proto=http");
        assert_eq!(h["x-forwarded-proto"], "https");
        let mut v6 = HeaderMap::new();
        forwarding_headers(&[], &mut v6, "2001:db8::1".parse().unwrap());
        assert_eq!(v6[header::FORWARDED], "for=\"[2001:db8::1]\";proto=http");
        assert_eq!(v6["x-forwarded-for"], "2001:db8::1");
    }

    #[test]
    fn the_values_kept_for_the_last_peer_are_never_another_peers() {
        for ip in [
            "192.0.2.1",
            "192.0.2.1",
            "198.51.100.7",
            "2001:db8::1",
            "192.0.2.1",
        ] {
            let peer: IpAddr = ip.parse().unwrap();
            let mut h = HeaderMap::new();
            h.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
            forwarding_headers(&[], &mut h, peer);
            let fwd = match peer {
                IpAddr::V4(_) => format!("for={ip};proto=http"),
                IpAddr::V6(_) => format!("for=\"[{ip}]\";proto=http"),
            };
            assert_eq!(h["x-forwarded-for"], ip);
            assert_eq!(h[header::FORWARDED], fwd.as_str());
            assert_eq!(h["x-forwarded-proto"], "http");
        }
        // A trusted peer without a chain gets the same values.
        let trusted = ["10.0.0.0/8".parse::<crate::actor::Cidr>().unwrap()];
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        forwarding_headers(&trusted, &mut h, "10.0.0.2".parse().unwrap());
        assert_eq!(h["x-forwarded-for"], "10.0.0.2");
        assert_eq!(h[header::FORWARDED], "for=10.0.0.2;proto=http");
        assert_eq!(h["x-forwarded-proto"], "https");
    }

    #[test]
    fn trailer_is_end_to_end_and_te_trailers_is_read() {
        let mut h = HeaderMap::new();
        h.insert(header::TRAILER, HeaderValue::from_static("x-sum"));
        h.insert(header::TE, HeaderValue::from_static("gzip;q=0.5, Trailers"));
        assert!(accepts_trailers(&h));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h[header::TRAILER], "x-sum");
        assert!(!h.contains_key(header::TE));
        h.insert(header::TE, HeaderValue::from_static("gzip, deflate"));
        assert!(!accepts_trailers(&h));
    }
}
