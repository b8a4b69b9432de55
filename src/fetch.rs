//! HTTP side of the fetcher: one attempt at the boot signal or at the
//! metadata fetch, across the configured endpoints in order, with every
//! failure classified for the retry loop, and the backoff that loop waits by.
//!
//! One attempt here is one request per endpoint at most; the caller owns
//! the loop, the overall deadline and the logging of the final outcome.
//!
//! The calls block, as the fetcher's loop wants, but no thread does the
//! work behind them: reqwest's async client runs on a current-thread tokio
//! runtime that [`Client`] owns and drives only inside its own calls.
//! (reqwest's blocking client would start a runtime thread of its own and
//! hand it every request.)

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::io;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use reqwest::header::CONTENT_TYPE;
use reqwest::{RequestBuilder, Response, StatusCode, Url};
use tokio::runtime::{self, Runtime};

/// Longest wait for the TCP handshake with one endpoint.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest time one request may take, from connect to the last body byte.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest `/conf?format=json` body accepted. Real documents are a few
/// KiB; anything near this is not the metadata service.
pub const MAX_BODY: u64 = 1 << 20;

/// The boot signal, byte for byte as afterburn sends it
/// (scaleway-metadata.md §2.2).
pub const BOOTED_BODY: &str = r#"{"state_detail":"booted"}"#;

/// Path of the boot signal, relative to a base URL.
pub const STATE_PATH: &str = "/state";

/// Path of the metadata document, relative to a base URL. The JSON form,
/// because the shell form cannot be parsed back reliably (§12).
pub const CONF_PATH: &str = "/conf?format=json";

const USER_AGENT: &str = concat!("scwd/", env!("CARGO_PKG_VERSION"));

/// Statuses that mean "ask again later": rate limiting and server trouble,
/// and, for `GET /conf`, a success other than 200 (204 No Content, 206):
/// an answer without the document, retried as an empty 200 is.
/// Every other non-success status is final: asking again gets the same.
pub const RETRYABLE_STATUS: [RangeInclusive<u16>; 3] = [201..=299, 429..=429, 500..=599];

/// Why one attempt failed. Each variant names the URL it was about, so
/// the message alone tells the administrator what to look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// The list of metadata URLs is empty (final).
    NoUrl,
    /// A metadata URL is not a bare `http://` or `https://` base (final).
    BadUrl {
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The HTTP client could not be built, e.g. no CA roots for an
    /// `https://` endpoint (final).
    Setup {
        /// The underlying error.
        cause: String,
    },
    /// No connection: refused, unreachable, or no handshake within
    /// [`CONNECT_TIMEOUT`] (retryable).
    Connect {
        /// The request URL.
        url: String,
        /// The underlying error.
        cause: String,
    },
    /// The TLS handshake failed, e.g. the certificate does not verify
    /// (final: the roots are read once and the server's certificate does
    /// not change between attempts).
    Tls {
        /// The request URL.
        url: String,
        /// The underlying error.
        cause: String,
    },
    /// Connected, but the whole exchange took longer than
    /// [`REQUEST_TIMEOUT`] (retryable).
    Timeout {
        /// The request URL.
        url: String,
    },
    /// The connection broke before a response arrived: reset, closed,
    /// or not HTTP (retryable).
    Transport {
        /// The request URL.
        url: String,
        /// The underlying error.
        cause: String,
    },
    /// The service answered with a status other than the one wanted
    /// (retryable for [`RETRYABLE_STATUS`], final otherwise).
    Status {
        /// The request URL.
        url: String,
        /// The HTTP status code.
        status: u16,
    },
    /// The response body is larger than [`MAX_BODY`] (final).
    TooLarge {
        /// The request URL.
        url: String,
    },
    /// The response body broke off before its end (retryable).
    Body {
        /// The request URL.
        url: String,
        /// The underlying error.
        cause: String,
    },
}

impl FetchError {
    /// Whether asking again may succeed: true for network trouble, 429 and
    /// 5xx; false for a bad URL, another 4xx or an oversized body.
    pub fn is_retryable(&self) -> bool {
        match self {
            FetchError::NoUrl
            | FetchError::BadUrl { .. }
            | FetchError::Setup { .. }
            | FetchError::Tls { .. }
            | FetchError::TooLarge { .. } => false,
            FetchError::Connect { .. }
            | FetchError::Timeout { .. }
            | FetchError::Transport { .. }
            | FetchError::Body { .. } => true,
            FetchError::Status { status, .. } => {
                RETRYABLE_STATUS.iter().any(|r| r.contains(status))
            }
        }
    }

    /// How much an error says about the service, to pick the one to report
    /// when every endpoint failed. An answer from the service beats any
    /// network failure: with the default endpoints the IPv6 one is often
    /// unreachable at boot, and its "connection refused" must not hide the
    /// IPv4 endpoint's 404. Among answers, a final one beats a transient
    /// one, so a misconfigured endpoint is reported, and the loop stops
    /// rather than retrying what cannot change.
    fn weight(&self) -> u8 {
        match self {
            FetchError::NoUrl | FetchError::BadUrl { .. } | FetchError::Setup { .. } => 0,
            FetchError::Connect { .. } => 1,
            FetchError::Timeout { .. } | FetchError::Transport { .. } | FetchError::Body { .. } => {
                2
            }
            FetchError::Status { .. } | FetchError::Tls { .. } | FetchError::TooLarge { .. } => {
                if self.is_retryable() {
                    3
                } else {
                    4
                }
            }
        }
    }
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::NoUrl => write!(f, "no metadata URL configured"),
            FetchError::BadUrl { url, reason } => write!(f, "bad metadata URL \"{url}\": {reason}"),
            FetchError::Setup { cause } => write!(f, "HTTP client: {cause}"),
            FetchError::Connect { url, cause } => write!(f, "{url}: connect: {cause}"),
            FetchError::Tls { url, cause } => write!(f, "{url}: TLS: {cause}"),
            FetchError::Timeout { url } => write!(
                f,
                "{url}: no complete answer within {} s",
                REQUEST_TIMEOUT.as_secs()
            ),
            FetchError::Transport { url, cause } => write!(f, "{url}: {cause}"),
            FetchError::Status { url, status } => {
                write!(f, "{url}: HTTP {status}")?;
                match StatusCode::from_u16(*status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                {
                    Some(reason) => write!(f, " {reason}"),
                    None => Ok(()),
                }
            }
            FetchError::TooLarge { url } => {
                write!(f, "{url}: response body larger than {MAX_BODY} bytes")
            }
            FetchError::Body { url, cause } => write!(f, "{url}: response body: {cause}"),
        }
    }
}

impl StdError for FetchError {}

/// How many turns [`Client`] gives the runtime, at most, to run what a
/// request left behind (the connection's task, which closes the socket)
/// before returning. One suffices in the tests; the bound only keeps a
/// task that is not done from holding up the caller: it then runs at the
/// next call.
const SETTLE_TURNS: usize = 16;

/// The metadata service's endpoints and an HTTP client for them.
#[derive(Debug)]
pub struct Client {
    /// Drives `http`, on the calling thread, only during a call.
    runtime: Runtime,
    http: reqwest::Client,
    /// Base URLs without a trailing slash, in the configured order.
    bases: Vec<String>,
}

impl Client {
    /// Checks the base URLs and builds the HTTP client.
    ///
    /// With only `http://` endpoints (the default) no certificate store is
    /// built at all: parsing the system CA bundle is most of a run's CPU
    /// time (DESIGN §6). With an `https://` endpoint the system roots are
    /// read here, from `/etc/ssl/cert.pem` on OpenBSD (`SSL_CERT_FILE` and
    /// `SSL_CERT_DIR` override), so the client must then be built before
    /// the fetcher chroots.
    pub fn new(urls: &[String]) -> Result<Client, FetchError> {
        if urls.is_empty() {
            return Err(FetchError::NoUrl);
        }
        let bases = urls
            .iter()
            .map(|url| check_base(url))
            .collect::<Result<Vec<_>, _>>()?;
        // The bases are normalized: the scheme is lower case.
        let https = bases.iter().any(|base| base.starts_with("https:"));
        // I/O and timers only: no worker threads, no blocking pool in use
        // (the hosts are IP literals, so nothing is ever resolved).
        let runtime = runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| FetchError::Setup {
                cause: format!("runtime: {}", root_cause(&e)),
            })?;
        // reqwest 0.13 arms nothing while building; built inside anyway,
        // so whatever a later version does arm at build time (a pool
        // timer, say) lands on this runtime instead of panicking with
        // "no reactor running".
        let http = {
            let _entered = runtime.enter();
            build_http(https)?
        };
        Ok(Client {
            runtime,
            http,
            bases,
        })
    }

    /// `PATCH /state` with `{"state_detail":"booted"}`, trying each
    /// endpoint in order until one answers 2xx. The response body is never
    /// read: nobody knows its format and nothing depends on it.
    pub fn signal_booted(&self) -> Result<(), FetchError> {
        self.each_endpoint(STATE_PATH, async |url| {
            let request = self
                .http
                .patch(url)
                .header(CONTENT_TYPE, "application/json")
                .body(BOOTED_BODY);
            let response = send(request, url).await?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(status_error(url, response.status()))
            }
        })
    }

    /// `GET /conf?format=json`, trying each endpoint in order until one
    /// answers 200 with a body of at most [`MAX_BODY`] bytes, and returns
    /// that body.
    pub fn get_conf(&self) -> Result<Vec<u8>, FetchError> {
        self.get_conf_from().map(|(_, body)| body)
    }

    /// [`Client::get_conf`], and the URL that answered (for `scwctl show`).
    pub fn get_conf_from(&self) -> Result<(String, Vec<u8>), FetchError> {
        self.each_endpoint(CONF_PATH, async |url| {
            let mut response = send(self.http.get(url), url).await?;
            if response.status() != StatusCode::OK {
                return Err(status_error(url, response.status()));
            }
            let too_large = || FetchError::TooLarge {
                url: url.to_string(),
            };
            // Refuse before reading when the size is declared...
            let declared = response.content_length();
            if declared.is_some_and(|n| n > MAX_BODY) {
                return Err(too_large());
            }
            // ...and otherwise stop at the first chunk past the limit, so a
            // hostile or broken service never makes the fetcher hold more.
            let mut body = Vec::with_capacity(declared.unwrap_or(0) as usize);
            while let Some(chunk) = response.chunk().await.map_err(|e| body_error(url, &e))? {
                if (body.len() + chunk.len()) as u64 > MAX_BODY {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            Ok((url.to_string(), body))
        })
    }

    /// Runs `request` on each endpoint's URL for `path` in order and
    /// returns the first success, or the most telling failure
    /// ([`FetchError::weight`]; the earlier endpoint on a tie).
    fn each_endpoint<T>(
        &self,
        path: &str,
        request: impl AsyncFn(&str) -> Result<T, FetchError>,
    ) -> Result<T, FetchError> {
        let mut worst: Option<FetchError> = None;
        for base in &self.bases {
            let url = format!("{base}{path}");
            match self.block_on(request(&url)) {
                Ok(value) => return Ok(value),
                Err(e) => {
                    log::debug!("{e}");
                    if worst.as_ref().is_none_or(|w| e.weight() > w.weight()) {
                        worst = Some(e);
                    }
                }
            }
        }
        // Client::new refuses an empty endpoint list, so there was a failure.
        Err(worst.expect("at least one endpoint"))
    }

    /// Runs one request to its end on the runtime, then lets the tasks it
    /// left run too: with no connection pool, the connection's task closes
    /// its socket as soon as it is polled after the response is dropped.
    /// Without this turn it would only be polled at the next call, minutes
    /// later, and the service would see the connection held open till then.
    /// The timeouts reqwest arms live in the same runtime, so they too are
    /// created here, never outside it.
    fn block_on<T>(&self, request: impl Future<Output = T>) -> T {
        self.runtime.block_on(async {
            let out = request.await;
            let metrics = runtime::Handle::current().metrics();
            for _ in 0..SETTLE_TURNS {
                if metrics.num_alive_tasks() == 0 {
                    break;
                }
                tokio::task::yield_now().await;
            }
            out
        })
    }
}

/// Checks that `url` is a bare base such as `http://169.254.42.42` or
/// `http://[fd00:42::42]:8080/`, and returns it without a trailing slash.
pub fn check_base(url: &str) -> Result<String, FetchError> {
    let bad = |reason| FetchError::BadUrl {
        url: url.to_string(),
        reason,
    };
    let parsed = Url::parse(url).map_err(|_| bad("not a URL"))?;
    if parsed.scheme() != "http" && parsed.scheme() != "https" {
        return Err(bad("scheme must be http or https"));
    }
    // The fetcher runs chrooted without resolv.conf and is pledged without
    // "dns": on OpenBSD a name lookup would abort it.
    let host = parsed.host_str().unwrap_or_default();
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if literal.parse::<IpAddr>().is_err() {
        return Err(bad("host must be an IP address"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad("user name or password not allowed"));
    }
    if parsed.path() != "/" || parsed.query().is_some() || parsed.fragment().is_some() {
        // scwd appends /state and /conf itself.
        return Err(bad("path, query or fragment not allowed"));
    }
    Ok(parsed.as_str().trim_end_matches('/').to_string())
}

/// Builds the reqwest client: fixed timeouts, no proxy from the
/// environment (the service is link-local), no redirects, no retries of
/// its own (the caller's loop retries, with backoff), and no pooled
/// connections (requests are minutes apart; an idle socket only goes stale).
fn build_http(https: bool) -> Result<reqwest::Client, FetchError> {
    // reqwest is built without a provider of its own (aws-lc does not
    // build for OpenBSD, crates.md §1). An Err only means one is already
    // installed, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .retry(reqwest::retry::never())
        .pool_max_idle_per_host(0);
    if !https {
        // reqwest would load the system roots even for plain HTTP; a TLS
        // configuration that trusts nothing costs nothing and is never used.
        let tls = rustls::ClientConfig::builder()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        builder = builder.tls_backend_preconfigured(tls);
    }
    builder.build().map_err(|e| FetchError::Setup {
        cause: root_cause(&e),
    })
}

/// Sends one request. [`REQUEST_TIMEOUT`], set on the client, runs from
/// here to the body's last byte, however slowly it arrives.
async fn send(request: RequestBuilder, url: &str) -> Result<Response, FetchError> {
    request.send().await.map_err(|e| request_error(url, &e))
}

fn status_error(url: &str, status: StatusCode) -> FetchError {
    FetchError::Status {
        url: url.to_string(),
        status: status.as_u16(),
    }
}

/// Classifies a failure to get a response at all.
fn request_error(url: &str, e: &reqwest::Error) -> FetchError {
    let url = url.to_string();
    if is_tls(e) {
        FetchError::Tls {
            url,
            cause: root_cause(e),
        }
    } else if e.is_connect() {
        // reqwest's own connect deadline surfaces as tokio's "deadline has
        // elapsed"; say which deadline.
        let cause = if e.is_timeout() {
            format!("no answer within {} s", CONNECT_TIMEOUT.as_secs())
        } else {
            root_cause(e)
        };
        FetchError::Connect { url, cause }
    } else if e.is_timeout() {
        FetchError::Timeout { url }
    } else {
        FetchError::Transport {
            url,
            cause: root_cause(e),
        }
    }
}

/// Whether rustls refused the handshake.
fn is_tls(e: &(dyn StdError + 'static)) -> bool {
    chain(e).any(|e| e.is::<rustls::Error>())
}

/// Classifies a failure while reading the body.
fn body_error(url: &str, e: &reqwest::Error) -> FetchError {
    let url = url.to_string();
    if e.is_timeout() {
        FetchError::Timeout { url }
    } else {
        FetchError::Body {
            url,
            cause: root_cause(e),
        }
    }
}

/// The innermost error's message, which names what actually happened
/// ("Connection refused"); the outer layers only repeat the URL. The
/// " (os error N)" suffix std adds is dropped, as OpenBSD's err(3) would.
fn root_cause(e: &(dyn StdError + 'static)) -> String {
    let message = chain(e).last().unwrap_or(e).to_string();
    match message.find(" (os error ") {
        Some(at) if message.ends_with(')') => message[..at].to_string(),
        _ => message,
    }
}

/// `e` and the errors under it, outermost first. An io::Error's source()
/// skips the error it wraps, and reqwest, hyper and tokio-rustls all wrap
/// theirs in one, so an io::Error is followed through get_ref() instead.
fn chain<'a>(
    e: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(e), |&e| match e.downcast_ref::<io::Error>() {
        Some(io) => io.get_ref().map(|inner| inner as &(dyn StdError + 'static)),
        None => e.source(),
    })
}

/// Retry policy as data: how long to wait before the next attempt.
///
/// Delays start at [`Backoff::INITIAL`] and double, capped at
/// [`Backoff::EARLY_CAP`] during [`Backoff::EARLY_PERIOD`] after boot, so a
/// service that comes up late is used within about a second, and at
/// [`Backoff::LATE_CAP`] afterwards, so an absent service is not hammered.
/// Each delay is drawn uniformly from its upper half ("equal jitter"):
/// fetchers that start together spread out, yet never retry at once.
#[derive(Debug, Clone)]
pub struct Backoff {
    start: Instant,
    attempt: u32,
    random: RandomState,
}

impl Backoff {
    /// First delay, before jitter.
    pub const INITIAL: Duration = Duration::from_millis(100);
    /// Cap on a delay during the early period.
    pub const EARLY_CAP: Duration = Duration::from_secs(1);
    /// How long after [`Backoff::new`] the early cap applies.
    pub const EARLY_PERIOD: Duration = Duration::from_secs(60);
    /// Cap on a delay after the early period.
    pub const LATE_CAP: Duration = Duration::from_secs(10);

    /// A policy whose early period starts at `start` (the daemon's start).
    pub fn new(start: Instant) -> Backoff {
        Backoff {
            start,
            attempt: 0,
            // std's hasher keys come from the OS once per thread; enough
            // to spread retries, and no random number crate to ship.
            random: RandomState::new(),
        }
    }

    /// The delay to wait, at `now`, before the next attempt.
    pub fn next_delay(&mut self, now: Instant) -> Duration {
        let cap = if now.saturating_duration_since(self.start) < Self::EARLY_PERIOD {
            Self::EARLY_CAP
        } else {
            Self::LATE_CAP
        };
        // 2^7 × 100 ms already exceeds the late cap; stop counting there.
        let ceiling = Self::INITIAL
            .saturating_mul(1 << self.attempt.min(7))
            .min(cap);
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        let spread = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        let draw = self.random.hash_one((self.attempt, now)) % spread.saturating_add(1);
        half + Duration::from_nanos(draw)
    }

    /// Starts the doubling again from [`Backoff::INITIAL`], after a success.
    /// The early period stays anchored at the original start.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The delay for each attempt lies in the upper half of its ceiling.
    fn assert_in_upper_half(delay: Duration, ceiling: Duration) {
        assert!(
            delay >= ceiling / 2 && delay <= ceiling,
            "{delay:?} not in [{:?}, {ceiling:?}]",
            ceiling / 2
        );
    }

    #[test]
    fn backoff_doubles_up_to_one_second_in_the_first_minute() {
        let start = Instant::now();
        let mut backoff = Backoff::new(start);
        let ceilings = [100, 200, 400, 800, 1000, 1000, 1000, 1000, 1000, 1000];
        for (i, ms) in ceilings.into_iter().enumerate() {
            let now = start + Duration::from_secs(5 * i as u64);
            assert_in_upper_half(backoff.next_delay(now), Duration::from_millis(ms));
        }
    }

    #[test]
    fn backoff_caps_at_ten_seconds_after_the_first_minute() {
        let start = Instant::now();
        let mut backoff = Backoff::new(start);
        let late = start + Backoff::EARLY_PERIOD;
        let ceilings = [100, 200, 400, 800, 1600, 3200, 6400, 10000, 10000, 10000];
        for ms in ceilings {
            assert_in_upper_half(backoff.next_delay(late), Duration::from_millis(ms));
        }
        // Many more attempts never overflow or exceed the cap.
        for _ in 0..100 {
            assert_in_upper_half(backoff.next_delay(late), Backoff::LATE_CAP);
        }
    }

    #[test]
    fn backoff_drops_to_the_early_cap_only_while_early() {
        let start = Instant::now();
        let mut backoff = Backoff::new(start);
        for _ in 0..10 {
            backoff.next_delay(start);
        }
        assert_in_upper_half(backoff.next_delay(start), Backoff::EARLY_CAP);
        let later = start + Backoff::EARLY_PERIOD + Duration::from_secs(1);
        assert_in_upper_half(backoff.next_delay(later), Backoff::LATE_CAP);
    }

    #[test]
    fn backoff_reset_starts_again_at_the_initial_delay() {
        let start = Instant::now();
        let late = start + Duration::from_secs(3600);
        let mut backoff = Backoff::new(start);
        for _ in 0..20 {
            backoff.next_delay(late);
        }
        backoff.reset();
        assert_in_upper_half(backoff.next_delay(late), Backoff::INITIAL);
        assert_in_upper_half(backoff.next_delay(late), Backoff::INITIAL * 2);
    }

    #[test]
    fn backoff_jitter_spreads_delays() {
        let start = Instant::now();
        let late = start + Backoff::EARLY_PERIOD;
        let mut delays = std::collections::HashSet::new();
        for _ in 0..50 {
            let mut backoff = Backoff::new(start);
            delays.insert(backoff.next_delay(late));
        }
        // 50 draws from 50 ms of nanoseconds: equal values mean no jitter.
        assert!(delays.len() > 40, "only {} distinct delays", delays.len());
    }

    #[test]
    fn retryable_statuses() {
        let status = |status| FetchError::Status {
            url: "http://x/state".into(),
            status,
        };
        for code in [429, 500, 502, 503, 504, 599] {
            assert!(status(code).is_retryable(), "{code}");
        }
        for code in [301, 400, 401, 403, 404, 405, 410, 428, 430, 499] {
            assert!(!status(code).is_retryable(), "{code}");
        }
    }

    #[test]
    fn root_cause_drops_the_os_error_suffix() {
        let e = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(root_cause(&e), "Connection refused");
        let e = io::Error::other("end of file before message length reached");
        assert_eq!(root_cause(&e), "end of file before message length reached");
    }
}
