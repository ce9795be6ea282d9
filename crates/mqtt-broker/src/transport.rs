//! The byte streams a connection runs over: plain TCP, TLS, WebSocket (over TCP or TLS), as one
//! pair of read and write halves, and the listener side that turns an accepted TCP stream into
//! one of them (TLS handshake, WebSocket upgrade on the configured path with the `mqtt`
//! subprotocol [MQTT-6.0.0-3, MQTT-6.0.0-4]).
//!
//! Plain TCP keeps its halves as they are, so that an idle connection holds no read buffer
//! (see `connection.rs`); the others go through `tokio::io::split`, and hold what their TLS or
//! WebSocket layer holds.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::config::{ListenerConfig, ListenerProtocol};
use crate::tls::{ServerTls, common_name};

/// Bytes read at a time when no frame is under way.
pub(crate) const READ_CHUNK: usize = 4096;

/// A stream other than plain TCP.
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// An accepted connection's stream.
pub(crate) enum Transport {
    Tcp(TcpStream),
    Other(Box<dyn Io>),
}

impl Transport {
    /// The read and write halves.
    pub(crate) fn split(self) -> (Reader, Writer) {
        match self {
            Self::Tcp(s) => {
                let (r, w) = s.into_split();
                (Reader::Tcp(r), Writer::Tcp(w))
            }
            Self::Other(s) => {
                let (r, w) = tokio::io::split(s);
                (Reader::Other(r), Writer::Other(w))
            }
        }
    }
}

/// The reading half of a connection.
pub(crate) enum Reader {
    Tcp(OwnedReadHalf),
    Other(tokio::io::ReadHalf<Box<dyn Io>>),
}

impl Reader {
    /// Reads what the stream has into the buffer, waiting until it has something; 0 at the end
    /// of the stream.
    ///
    /// Plain TCP: an idle connection holds no read buffer. When there is nothing to read and
    /// nothing buffered, the buffer is released before waiting, and bytes that arrive with no
    /// frame under way are read into a chunk on the stack and copied into a buffer of their
    /// size (a readiness that turns out spurious allocates nothing). A busy connection keeps its
    /// buffer: the read is tried before giving it up. When the decoder has made room for a
    /// frame under way, the read goes straight into that room. Ten thousand idle connections
    /// would otherwise keep 40 MB of empty buffers. Other streams read into the buffer, given
    /// room for a chunk.
    ///
    /// Cancel-safe: nothing read is lost if the future is dropped.
    pub(crate) async fn read_some(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Self::Tcp(reader) => loop {
                let read = if buf.capacity() > buf.len() {
                    reader.try_read_buf(buf)
                } else {
                    let mut chunk = [0u8; READ_CHUNK];
                    reader.try_read(&mut chunk).inspect(|&n| {
                        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
                    })
                };
                match read {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if buf.is_empty() && buf.capacity() > 0 {
                            *buf = BytesMut::new();
                        }
                        reader.readable().await?;
                    }
                    other => return other,
                }
            },
            Self::Other(reader) => {
                if buf.capacity() == buf.len() {
                    buf.reserve(READ_CHUNK);
                }
                reader.read_buf(buf).await
            }
        }
    }
}

/// The writing half of a connection.
pub(crate) enum Writer {
    Tcp(OwnedWriteHalf),
    Other(tokio::io::WriteHalf<Box<dyn Io>>),
}

impl AsyncWrite for Writer {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(w) => Pin::new(w).poll_write(cx, data),
            Self::Other(w) => Pin::new(w).poll_write(cx, data),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(w) => Pin::new(w).poll_flush(cx),
            Self::Other(w) => Pin::new(w).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(w) => Pin::new(w).poll_shutdown(cx),
            Self::Other(w) => Pin::new(w).poll_shutdown(cx),
        }
    }
}

/// MQTT over a WebSocket: the payloads of binary messages, in order, as one byte stream; each
/// write a binary message. Text messages are a protocol error [MQTT-6.0.0-1]; a close ends
/// the stream.
pub(crate) struct WsIo<S> {
    ws: WebSocketStream<S>,
    /// What is left of the binary message being read.
    read: Bytes,
}

impl<S> WsIo<S> {
    fn new(ws: WebSocketStream<S>) -> Self {
        Self {
            ws,
            read: Bytes::new(),
        }
    }
}

fn ws_error(e: tokio_tungstenite::tungstenite::Error) -> io::Error {
    io::Error::other(e)
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.read.is_empty() {
                let n = this.read.len().min(buf.remaining());
                buf.put_slice(this.read.get(..n).unwrap_or_default());
                this.read.advance(n);
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut this.ws).poll_next(cx)) {
                None | Some(Ok(Message::Close(_))) => return Poll::Ready(Ok(())),
                Some(Ok(Message::Binary(data))) => this.read = data,
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "a WebSocket text message: MQTT goes in binary messages [MQTT-6.0.0-1]",
                    )));
                }
                // Pings are answered by the WebSocket layer.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Err(e)) => return Poll::Ready(Err(ws_error(e))),
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(Pin::new(&mut this.ws).poll_ready(cx)).map_err(ws_error)?;
        Pin::new(&mut this.ws)
            .start_send(Message::Binary(Bytes::copy_from_slice(data)))
            .map_err(ws_error)?;
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().ws)
            .poll_flush(cx)
            .map_err(ws_error)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().ws)
            .poll_close(cx)
            .map_err(ws_error)
    }
}

/// A listener's side of accepting a connection: its configuration and its TLS.
pub(crate) struct ListenerRuntime {
    pub(crate) config: ListenerConfig,
    pub(crate) tls: Option<ServerTls>,
    /// The largest packet a connection may send (the WebSocket layer's message limit).
    pub(crate) max_packet_size: usize,
}

/// An accepted stream, upgraded: the transport, and the client certificate's Common Name
/// when the listener uses it as the user name.
pub(crate) struct Upgraded {
    pub(crate) transport: Transport,
    pub(crate) identity: Option<Option<String>>,
}

impl ListenerRuntime {
    /// The TLS handshake and the WebSocket upgrade the listener asks for.
    ///
    /// # Errors
    /// A failed handshake or upgrade (the connection is then dropped).
    pub(crate) async fn upgrade(self: &Arc<Self>, stream: TcpStream) -> io::Result<Upgraded> {
        let _ = stream.set_nodelay(true);
        let websockets = self.config.protocol == ListenerProtocol::Websockets;
        let Some(tls) = &self.tls else {
            if websockets {
                let ws = self.websocket(stream).await?;
                return Ok(Upgraded {
                    transport: Transport::Other(Box::new(WsIo::new(ws))),
                    identity: None,
                });
            }
            return Ok(Upgraded {
                transport: Transport::Tcp(stream),
                identity: None,
            });
        };
        let stream = tls.acceptor().accept(stream).await?;
        let identity = self.config.use_identity_as_username.then(|| {
            stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first())
                .and_then(|cert| common_name(cert))
        });
        let transport = if websockets {
            Transport::Other(Box::new(WsIo::new(self.websocket(stream).await?)))
        } else {
            Transport::Other(Box::new(stream))
        };
        Ok(Upgraded {
            transport,
            identity,
        })
    }

    /// The WebSocket upgrade: on the listener's path, with the `mqtt` subprotocol (or the
    /// `mqttv3.1` of old 3.1 clients) when the client offers it.
    async fn websocket<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: S,
    ) -> io::Result<WebSocketStream<S>> {
        let path = self.config.path.clone();
        let check = move |request: &Request, mut response: Response| {
            if request.uri().path() != path {
                let mut refusal = ErrorResponse::new(Some("not an MQTT WebSocket path".into()));
                *refusal.status_mut() = StatusCode::NOT_FOUND;
                return Err(refusal);
            }
            let offered = request
                .headers()
                .get_all("sec-websocket-protocol")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .find(|p| *p == "mqtt" || *p == "mqttv3.1")
                .map(str::to_owned);
            if let Some(protocol) = offered
                && let Ok(value) = HeaderValue::from_str(&protocol)
            {
                response
                    .headers_mut()
                    .insert("sec-websocket-protocol", value);
            }
            Ok(response)
        };
        let mut config = WebSocketConfig::default();
        // Small buffers: ten thousand idle WebSocket clients should not hold 2.5 GB of
        // tungstenite's default 128 KiB read and write buffers. Writes go out as they come
        // (the connection already batches its packets into one write).
        config.read_buffer_size = READ_CHUNK;
        config.write_buffer_size = 0;
        // A message holds at most one packet's worth (plus slack for clients that batch).
        config.max_message_size = Some(self.max_packet_size.saturating_add(READ_CHUNK));
        config.max_frame_size = Some(self.max_packet_size.saturating_add(READ_CHUNK));
        tokio_tungstenite::accept_hdr_async_with_config(stream, check, Some(config))
            .await
            .map_err(ws_error)
    }
}
