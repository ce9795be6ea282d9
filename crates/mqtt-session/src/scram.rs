//! SCRAM-SHA-256 (RFC 5802 with RFC 7677's hash), the challenge-response exchange behind MQTT
//! 5.0 enhanced authentication with the method `SCRAM-SHA-256`: the client proves it knows the
//! password without sending it, the server proves it knows the credentials, and the server only
//! stores a salted, iterated derivation ([`Credentials`]).
//!
//! Both ends are here, sans-IO: [`ScramClient`] and [`ScramServer`] turn one message into the
//! next. Nonces and salts are parameters, so that the exchange is deterministic under test
//! (RFC 7677's example is a test below); callers draw them from a secure random source.
//!
//! In MQTT 5.0: CONNECT carries the client-first message as Authentication Data, AUTH (0x18)
//! the server-first and client-final messages, and CONNACK (or, when re-authenticating, AUTH
//! 0x00) the server-final message.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::{digest, hmac, pbkdf2};

/// The MQTT Authentication Method of this exchange.
pub const METHOD: &str = "SCRAM-SHA-256";

/// The iteration count for new credentials (RFC 7677 asks for at least 4096).
pub const DEFAULT_ITERATIONS: u32 = 4096;

/// The most iterations accepted from a server or a credentials line: a hostile server must not
/// make a client spend seconds hashing (100,000 PBKDF2-SHA-256 rounds take about 0.1 s here).
pub const MAX_ITERATIONS: u32 = 100_000;

const KEY_LEN: usize = 32;

/// Why an exchange failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    /// A message that is not what the step expects.
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    /// The server does not know the user.
    #[error("unknown user")]
    UnknownUser,
    /// The client's proof is wrong (wrong password).
    #[error("invalid proof")]
    InvalidProof,
    /// The server's signature is wrong: it does not know the credentials.
    #[error("the server's signature does not verify")]
    InvalidServerSignature,
    /// The server refused with an `e=` message.
    #[error("the server refused: {0}")]
    ServerError(String),
    /// The nonce the server returned does not start with the client's.
    #[error("the server's nonce does not extend the client's")]
    NonceMismatch,
    /// An iteration count of 0 or above [`MAX_ITERATIONS`].
    #[error("iteration count out of range")]
    Iterations,
}

/// What a server stores for a user: never the password, only `StoredKey` and `ServerKey`
/// derived from it with a salt and an iteration count (RFC 5803's format for the text form).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The salt.
    pub salt: Vec<u8>,
    /// PBKDF2 iterations.
    pub iterations: u32,
    /// `H(HMAC(SaltedPassword, "Client Key"))`.
    pub stored_key: [u8; KEY_LEN],
    /// `HMAC(SaltedPassword, "Server Key")`.
    pub server_key: [u8; KEY_LEN],
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; KEY_LEN] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let tag = hmac::sign(&key, data);
    let mut out = [0u8; KEY_LEN];
    out.copy_from_slice(tag.as_ref());
    out
}

fn sha256(data: &[u8]) -> [u8; KEY_LEN] {
    let d = digest::digest(&digest::SHA256, data);
    let mut out = [0u8; KEY_LEN];
    out.copy_from_slice(d.as_ref());
    out
}

fn salted_password(
    password: &[u8],
    salt: &[u8],
    iterations: u32,
) -> Result<[u8; KEY_LEN], ScramError> {
    let n = std::num::NonZeroU32::new(iterations)
        .filter(|n| n.get() <= MAX_ITERATIONS)
        .ok_or(ScramError::Iterations)?;
    let mut out = [0u8; KEY_LEN];
    pbkdf2::derive(pbkdf2::PBKDF2_HMAC_SHA256, n, salt, password, &mut out);
    Ok(out)
}

/// Equality that looks at every byte whatever the first difference, so that its timing says
/// nothing about where two secrets differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn xor(a: &[u8; KEY_LEN], b: &[u8; KEY_LEN]) -> [u8; KEY_LEN] {
    let mut out = [0u8; KEY_LEN];
    for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
        *o = x ^ y;
    }
    out
}

impl Credentials {
    /// Derives the credentials of `password` with this salt and iteration count.
    ///
    /// # Errors
    /// [`ScramError::Iterations`].
    pub fn derive(password: &str, salt: &[u8], iterations: u32) -> Result<Self, ScramError> {
        let salted = salted_password(password.as_bytes(), salt, iterations)?;
        Ok(Self {
            salt: salt.to_vec(),
            iterations,
            stored_key: sha256(&hmac_sha256(&salted, b"Client Key")),
            server_key: hmac_sha256(&salted, b"Server Key"),
        })
    }

    /// The text form, RFC 5803's: `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`
    /// (Base64).
    pub fn to_text(&self) -> String {
        format!(
            "{METHOD}${}:{}${}:{}",
            self.iterations,
            BASE64.encode(&self.salt),
            BASE64.encode(self.stored_key),
            BASE64.encode(self.server_key)
        )
    }

    /// Parses [`Credentials::to_text`]'s form.
    ///
    /// # Errors
    /// [`ScramError::Malformed`] or [`ScramError::Iterations`].
    pub fn from_text(text: &str) -> Result<Self, ScramError> {
        let bad = ScramError::Malformed("credentials");
        let rest = text
            .strip_prefix(METHOD)
            .and_then(|r| r.strip_prefix('$'))
            .ok_or(bad.clone())?;
        let (params, keys) = rest.split_once('$').ok_or(bad.clone())?;
        let (iterations, salt) = params.split_once(':').ok_or(bad.clone())?;
        let (stored, server) = keys.split_once(':').ok_or(bad.clone())?;
        let iterations: u32 = iterations.parse().map_err(|_| bad.clone())?;
        if iterations == 0 || iterations > MAX_ITERATIONS {
            return Err(ScramError::Iterations);
        }
        let key = |text: &str| -> Result<[u8; KEY_LEN], ScramError> {
            BASE64
                .decode(text)
                .ok()
                .and_then(|v| <[u8; KEY_LEN]>::try_from(v.as_slice()).ok())
                .ok_or(ScramError::Malformed("credentials key"))
        };
        Ok(Self {
            salt: BASE64.decode(salt).map_err(|_| bad)?,
            iterations,
            stored_key: key(stored)?,
            server_key: key(server)?,
        })
    }
}

/// `saslname` escaping of a user name (`=` and `,`).
fn escape(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

fn unescape(name: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find('=') {
        out.push_str(rest.get(..i).unwrap_or_default());
        let code = rest
            .get(i..i + 3)
            .ok_or(ScramError::Malformed("user name"))?;
        out.push(match code {
            "=3D" => '=',
            "=2C" => ',',
            _ => return Err(ScramError::Malformed("user name")),
        });
        rest = rest.get(i + 3..).unwrap_or_default();
    }
    out.push_str(rest);
    Ok(out)
}

/// The value of attribute `name` (`name=value`) among comma-separated attributes.
fn attribute(message: &str, name: char) -> Option<&str> {
    message.split(',').find_map(|part| {
        let mut chars = part.chars();
        (chars.next() == Some(name) && chars.next() == Some('=')).then(|| part.get(2..))?
    })
}

/// The GS2 header of a client without channel binding, and its Base64 (`c=` attribute).
const GS2_HEADER: &str = "n,,";
const GS2_HEADER_B64: &str = "biws";

/// The GS2 header of a client that supports channel binding but thinks the server does not
/// (RFC 5802 section 6: a server without channel binding accepts it), and its Base64.
const GS2_HEADER_Y: &str = "y,,";
const GS2_HEADER_Y_B64: &str = "eSws";

/// The client-first message without its GS2 header, and the `c=` value that header gives.
fn split_gs2(message: &str) -> Option<(&str, &'static str)> {
    if let Some(bare) = message.strip_prefix(GS2_HEADER) {
        Some((bare, GS2_HEADER_B64))
    } else {
        message
            .strip_prefix(GS2_HEADER_Y)
            .map(|bare| (bare, GS2_HEADER_Y_B64))
    }
}

/// The client's side of an exchange.
#[derive(Debug)]
pub struct ScramClient {
    password: String,
    client_nonce: String,
    client_first_bare: String,
    server_signature: Option<[u8; KEY_LEN]>,
}

impl ScramClient {
    /// Starts an exchange for `user` with a fresh `client_nonce` (printable ASCII but `,`).
    /// Returns the client and the client-first message.
    pub fn start(user: &str, password: &str, client_nonce: &str) -> (Self, String) {
        let client_first_bare = format!("n={},r={client_nonce}", escape(user));
        let first = format!("{GS2_HEADER}{client_first_bare}");
        (
            Self {
                password: password.to_owned(),
                client_nonce: client_nonce.to_owned(),
                client_first_bare,
                server_signature: None,
            },
            first,
        )
    }

    /// Answers the server-first message with the client-final message (the proof).
    ///
    /// # Errors
    /// A malformed message, a nonce that does not extend ours, an out-of-range iteration count,
    /// or the server's `e=` refusal.
    pub fn server_first(&mut self, message: &str) -> Result<String, ScramError> {
        if self.server_signature.is_some() {
            // One challenge per exchange: a server asking again is out of turn.
            return Err(ScramError::Malformed("a second server-first message"));
        }
        if let Some(e) = attribute(message, 'e') {
            return Err(ScramError::ServerError(e.to_owned()));
        }
        let nonce = attribute(message, 'r').ok_or(ScramError::Malformed("server nonce"))?;
        if !nonce.starts_with(&self.client_nonce) || nonce.len() == self.client_nonce.len() {
            return Err(ScramError::NonceMismatch);
        }
        let salt = attribute(message, 's')
            .and_then(|s| BASE64.decode(s).ok())
            .ok_or(ScramError::Malformed("salt"))?;
        let iterations: u32 = attribute(message, 'i')
            .and_then(|i| i.parse().ok())
            .ok_or(ScramError::Malformed("iteration count"))?;
        let salted = salted_password(self.password.as_bytes(), &salt, iterations)?;
        let client_key = hmac_sha256(&salted, b"Client Key");
        let stored_key = sha256(&client_key);
        let without_proof = format!("c={GS2_HEADER_B64},r={nonce}");
        let auth_message = format!("{},{message},{without_proof}", self.client_first_bare);
        let signature = hmac_sha256(&stored_key, auth_message.as_bytes());
        let proof = xor(&client_key, &signature);
        let server_key = hmac_sha256(&salted, b"Server Key");
        self.server_signature = Some(hmac_sha256(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", BASE64.encode(proof)))
    }

    /// Checks the server-final message: the server proved it knows the credentials.
    ///
    /// # Errors
    /// [`ScramError::InvalidServerSignature`], the server's `e=` refusal, or a message out of
    /// turn.
    pub fn server_final(&self, message: &str) -> Result<(), ScramError> {
        if let Some(e) = attribute(message, 'e') {
            return Err(ScramError::ServerError(e.to_owned()));
        }
        let expected = self
            .server_signature
            .ok_or(ScramError::Malformed("server-final before server-first"))?;
        let got = attribute(message, 'v')
            .and_then(|v| BASE64.decode(v).ok())
            .ok_or(ScramError::Malformed("server signature"))?;
        if !constant_time_eq(&got, &expected) {
            return Err(ScramError::InvalidServerSignature);
        }
        Ok(())
    }
}

/// The server's side of an exchange, after the client-first message.
#[derive(Debug)]
pub struct ScramServer {
    user: String,
    credentials: Credentials,
    nonce: String,
    client_first_bare: String,
    server_first: String,
    /// The `c=` value the client's GS2 header calls for.
    gs2: &'static str,
}

/// The user name a client-first message names, to look its credentials up.
///
/// # Errors
/// [`ScramError::Malformed`] for anything but a GS2 header without channel binding followed by
/// `n=user,r=nonce`.
pub fn client_first_user(message: &str) -> Result<String, ScramError> {
    let (bare, _) = split_gs2(message).ok_or(ScramError::Malformed(
        "GS2 header (channel binding is not supported)",
    ))?;
    let user = attribute(bare, 'n').ok_or(ScramError::Malformed("user name"))?;
    unescape(user)
}

impl ScramServer {
    /// Answers a client-first message with the server-first message, for a user whose
    /// credentials the caller looked up (see [`client_first_user`]), with a fresh
    /// `server_nonce` (printable ASCII but `,`).
    ///
    /// # Errors
    /// [`ScramError::Malformed`].
    pub fn start(
        client_first: &str,
        credentials: Credentials,
        server_nonce: &str,
    ) -> Result<(Self, String), ScramError> {
        let user = client_first_user(client_first)?;
        let (bare, gs2) = split_gs2(client_first).ok_or(ScramError::Malformed("GS2 header"))?;
        let client_nonce = attribute(bare, 'r').ok_or(ScramError::Malformed("client nonce"))?;
        if client_nonce.is_empty() {
            return Err(ScramError::Malformed("client nonce"));
        }
        let nonce = format!("{client_nonce}{server_nonce}");
        let server_first = format!(
            "r={nonce},s={},i={}",
            BASE64.encode(&credentials.salt),
            credentials.iterations
        );
        Ok((
            Self {
                user,
                credentials,
                nonce,
                client_first_bare: bare.to_owned(),
                server_first: server_first.clone(),
                gs2,
            },
            server_first,
        ))
    }

    /// The user being authenticated.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Checks the client-final message; on success returns the server-final message.
    ///
    /// # Errors
    /// [`ScramError::InvalidProof`] for a wrong password, [`ScramError::Malformed`] otherwise.
    pub fn client_final(&self, message: &str) -> Result<String, ScramError> {
        let (without_proof, proof) = message
            .rsplit_once(",p=")
            .ok_or(ScramError::Malformed("client proof"))?;
        if attribute(without_proof, 'c') != Some(self.gs2) {
            return Err(ScramError::Malformed("channel binding"));
        }
        if attribute(without_proof, 'r') != Some(self.nonce.as_str()) {
            return Err(ScramError::NonceMismatch);
        }
        let proof: [u8; KEY_LEN] = BASE64
            .decode(proof)
            .ok()
            .and_then(|p| <[u8; KEY_LEN]>::try_from(p.as_slice()).ok())
            .ok_or(ScramError::Malformed("client proof"))?;
        let auth_message = format!(
            "{},{},{without_proof}",
            self.client_first_bare, self.server_first
        );
        let signature = hmac_sha256(&self.credentials.stored_key, auth_message.as_bytes());
        let client_key = xor(&proof, &signature);
        if !constant_time_eq(&sha256(&client_key), &self.credentials.stored_key) {
            return Err(ScramError::InvalidProof);
        }
        let server_signature = hmac_sha256(&self.credentials.server_key, auth_message.as_bytes());
        Ok(format!("v={}", BASE64.encode(server_signature)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7677 section 3: user "user", password "pencil".
    const CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
    const SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const SALT: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
    const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                                p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    fn credentials() -> Credentials {
        Credentials::derive("pencil", &BASE64.decode(SALT).unwrap(), 4096).unwrap()
    }

    #[test]
    fn rfc_7677_example_client_side() {
        let (mut client, first) = ScramClient::start("user", "pencil", CLIENT_NONCE);
        assert_eq!(first, "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first = format!("r={CLIENT_NONCE}{SERVER_NONCE},s={SALT},i=4096");
        assert_eq!(client.server_first(&server_first).unwrap(), CLIENT_FINAL);
        client.server_final(SERVER_FINAL).unwrap();
        assert_eq!(
            client.server_final("v=AAAA"),
            Err(ScramError::InvalidServerSignature)
        );
    }

    #[test]
    fn rfc_7677_example_server_side() {
        let first = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
        assert_eq!(client_first_user(first).unwrap(), "user");
        let (server, server_first) =
            ScramServer::start(first, credentials(), SERVER_NONCE).unwrap();
        assert_eq!(
            server_first,
            format!("r={CLIENT_NONCE}{SERVER_NONCE},s={SALT},i=4096")
        );
        assert_eq!(server.client_final(CLIENT_FINAL).unwrap(), SERVER_FINAL);
    }

    #[test]
    fn a_wrong_password_is_an_invalid_proof() {
        let (mut client, first) = ScramClient::start("user", "pen", "abc");
        let (server, server_first) = ScramServer::start(&first, credentials(), "xyz").unwrap();
        let last = client.server_first(&server_first).unwrap();
        assert_eq!(server.client_final(&last), Err(ScramError::InvalidProof));
    }

    #[test]
    fn credentials_round_trip_their_text_form() {
        let c = credentials();
        assert_eq!(Credentials::from_text(&c.to_text()).unwrap(), c);
        assert!(Credentials::from_text("SCRAM-SHA-256$0:AA==$AA==:AA==").is_err());
        assert!(Credentials::from_text("plain").is_err());
    }

    #[test]
    fn user_names_are_escaped() {
        let (_, first) = ScramClient::start("a=b,c", "p", "n");
        assert_eq!(first, "n,,n=a=3Db=2Cc,r=n");
        assert_eq!(client_first_user(&first).unwrap(), "a=b,c");
        assert!(client_first_user("n,,n=a=zz,r=n").is_err());
        // A client that would bind to the channel if it could (y) is served; one that requires
        // channel binding (p=...) is not (RFC 5802 section 6).
        assert_eq!(client_first_user("y,,n=a,r=n").unwrap(), "a");
        assert!(client_first_user("p=tls-unique,,n=a,r=n").is_err());
    }

    #[test]
    fn a_y_header_client_is_served_and_the_exchange_checks_its_binding_flag() {
        let (server, server_first) =
            ScramServer::start("y,,n=user,r=abc", credentials(), "xyz").unwrap();
        let mut client = ScramClient::start("user", "pencil", "abc").0;
        let last = client.server_first(&server_first).unwrap();
        // Our client says "n,,", the server expects "y,," for this exchange: refused.
        assert_eq!(
            server.client_final(&last),
            Err(ScramError::Malformed("channel binding"))
        );
        let fixed = last.replacen("c=biws", "c=eSws", 1);
        // The proof covers the c= attribute: a swapped header fails the proof.
        assert_eq!(server.client_final(&fixed), Err(ScramError::InvalidProof));
    }

    #[test]
    fn a_second_challenge_is_refused() {
        let (mut client, _) = ScramClient::start("user", "pencil", CLIENT_NONCE);
        let server_first = format!("r={CLIENT_NONCE}{SERVER_NONCE},s={SALT},i=4096");
        client.server_first(&server_first).unwrap();
        assert!(client.server_first(&server_first).is_err());
    }

    #[test]
    fn hostile_server_parameters_are_refused() {
        let (mut client, _) = ScramClient::start("user", "pencil", "abc");
        assert_eq!(
            client.server_first("r=abcdef,s=AAAA,i=4294967295"),
            Err(ScramError::Iterations)
        );
        assert_eq!(
            client.server_first("r=zzz,s=AAAA,i=4096"),
            Err(ScramError::NonceMismatch)
        );
        assert_eq!(
            client.server_first("e=unknown-user"),
            Err(ScramError::ServerError("unknown-user".into()))
        );
    }
}
