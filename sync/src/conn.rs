//! Connections: URL parsing (one URL, or several separated by commas for a
//! Redis Cluster), password redaction, timeouts.

use std::time::Duration;

use redis::ConnectionLike;

use crate::SyncError;

/// Where Redis is, parsed once.
#[derive(Clone)]
pub(crate) struct Endpoint {
    urls: Vec<String>,
    cluster: bool,
    redacted: String,
    /// PEM CA certificate(s) for `rediss://` (otherwise the system roots).
    tls_ca: Option<Vec<u8>>,
}

/// `rediss://` needs a rustls crypto provider; install ring's as the
/// process default unless the host already installed one.
fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

impl Endpoint {
    fn client(&self, url: &str) -> Result<redis::Client, String> {
        let tls = url.starts_with("rediss://");
        if tls {
            ensure_crypto_provider();
        }
        match &self.tls_ca {
            Some(ca) if tls => redis::Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(ca.clone()),
                },
            ),
            _ => redis::Client::open(url),
        }
        .map_err(|e| describe(&e))
    }
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted)
    }
}

/// A command connection: one server or a cluster.
pub(crate) type CommandConn = Box<dyn ConnectionLike + Send>;

/// `url` with any password replaced by `***` (the only form that may be
/// logged or shown).
pub fn redact_url(url: &str) -> String {
    url.split(',')
        .map(|u| {
            let u = u.trim();
            let Some(scheme_end) = u.find("://") else {
                return u.to_owned();
            };
            let rest = &u[scheme_end + 3..];
            let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
            let authority = &rest[..auth_end];
            match authority.rfind('@') {
                Some(at) => {
                    let userinfo = &authority[..at];
                    let user = userinfo.split(':').next().unwrap_or("");
                    let masked = if userinfo.contains(':') {
                        format!("{user}:***")
                    } else {
                        // `redis://secret@host` puts the password alone.
                        "***".to_owned()
                    };
                    format!("{}{}@{}", &u[..scheme_end + 3], masked, &rest[at + 1..])
                }
                None => u.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

impl Endpoint {
    /// Parses `url`: `redis://[user[:password]@]host[:port][/db]`,
    /// `rediss://...` (TLS; `tls_ca` is the PEM CA to trust instead of the
    /// system's roots), or several URLs separated by
    /// commas (a cluster's seed nodes). `cluster` forces cluster mode for a
    /// single seed.
    pub(crate) fn parse(
        url: &str,
        cluster: bool,
        tls_ca: Option<Vec<u8>>,
    ) -> Result<Endpoint, SyncError> {
        let redacted = redact_url(url);
        let urls: Vec<String> = url
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        if urls.is_empty() {
            return Err(SyncError::Config("empty Redis URL".into()));
        }
        for u in &urls {
            redis::Client::open(u.as_str()).map_err(|e| {
                SyncError::Config(format!("bad Redis URL {}: {}", redact_url(u), describe(&e)))
            })?;
        }
        Ok(Endpoint {
            cluster: cluster || urls.len() > 1,
            urls,
            redacted,
            tls_ca,
        })
    }

    /// The URL(s) with passwords masked.
    pub(crate) fn redacted(&self) -> &str {
        &self.redacted
    }

    #[cfg(test)]
    pub(crate) fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// A command connection with `connect` for connecting and `io` for
    /// every reply.
    pub(crate) fn command(&self, connect: Duration, io: Duration) -> Result<CommandConn, String> {
        if self.cluster {
            let mut builder = redis::cluster::ClusterClient::builder(self.urls.clone())
                .connection_timeout(connect)
                .response_timeout(io)
                .retries(1);
            if self.urls.iter().any(|u| u.starts_with("rediss://")) {
                ensure_crypto_provider();
                if let Some(ca) = &self.tls_ca {
                    builder = builder.certs(redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(ca.clone()),
                    });
                }
            }
            let client = builder.build().map_err(|e| describe(&e))?;
            let con = client.get_connection().map_err(|e| describe(&e))?;
            Ok(Box::new(con))
        } else {
            let con = self.single(0, connect)?;
            con.set_read_timeout(Some(io)).map_err(|e| describe(&e))?;
            con.set_write_timeout(Some(io)).map_err(|e| describe(&e))?;
            Ok(Box::new(con))
        }
    }

    /// A plain connection to seed `attempt % seeds` (pub/sub: in a cluster a
    /// `PUBLISH` reaches the subscribers of every node, so any node will do).
    pub(crate) fn single(
        &self,
        attempt: usize,
        connect: Duration,
    ) -> Result<redis::Connection, String> {
        let url = &self.urls[attempt % self.urls.len()];
        let client = self.client(url)?;
        client
            .get_connection_with_timeout(connect)
            .map_err(|e| describe(&e))
    }
}

/// An error as text without anything from the URL.
pub(crate) fn describe(e: &redis::RedisError) -> String {
    let mut s = e.to_string();
    if s.len() > 300 {
        let mut cut = 300;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact_url("redis://app:s3cret@10.0.0.1:6379/2"),
            "redis://app:***@10.0.0.1:6379/2"
        );
        assert_eq!(redact_url("redis://s3cret@h"), "redis://***@h");
        assert_eq!(redact_url("redis://h:1"), "redis://h:1");
        assert_eq!(
            redact_url("redis://u:p@a:1,redis://u:p@b:2"),
            "redis://u:***@a:1,redis://u:***@b:2"
        );
        assert_eq!(redact_url("redis://u:p:q@h"), "redis://u:***@h");
    }

    #[test]
    fn bad_urls_are_config_errors_without_secrets() {
        let e = Endpoint::parse("http://u:topsecret@h", false, None).unwrap_err();
        assert!(!e.to_string().contains("topsecret"), "{e}");
        assert!(Endpoint::parse("", false, None).is_err());
        let ep = Endpoint::parse("redis://127.0.0.1:1,redis://127.0.0.1:2", false, None).unwrap();
        assert!(ep.is_cluster());
    }
}
