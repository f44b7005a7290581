//! Whether a request's client is still there. actix-web keeps running a handler after its client
//! has closed the connection (actix/actix-web#3462), so a report nobody waits for would hold a
//! query connection until its statement timeout. Each connection's socket is kept beside it
//! ([`on_connect`]); reads are wrapped in [`cancel_when_gone`], which drops the handler once the
//! client has closed its side. Dropping it abandons the report's query connection, which is then
//! closed rather than returned ([`crate::query::reads::Held`]), and PostgreSQL ends the statement
//! (`client_connection_check_interval` on the query pools).

use std::any::Any;
use std::io::ErrorKind;
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::BoxBody;
use actix_web::dev::{Extensions, ServiceRequest, ServiceResponse};
use actix_web::middleware::{from_fn, Next};
use actix_web::{ResponseError, Route};

use super::ApiError;
use crate::telemetry;

/// How often a read checks that its client is still there (the first check comes after this long,
/// so quick reads never check).
const CHECK_EVERY: Duration = Duration::from_millis(250);

/// A second handle on a connection's socket (a duplicated descriptor, closed with the
/// connection's data), only ever peeked at.
#[derive(Clone)]
struct ClientSocket(Arc<TcpStream>);

impl ClientSocket {
    /// Whether the client has closed the connection (or it broke). A client that only shut down
    /// its sending side counts as gone, as it does for Go's `net/http`; data it sent ahead (a
    /// pipelined request) does not.
    fn gone(&self) -> bool {
        match self.0.peek(&mut [0u8; 1]) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted),
        }
    }
}

/// `HttpServer::on_connect`: keeps a handle on each TCP connection's socket.
pub fn on_connect(connection: &dyn Any, data: &mut Extensions) {
    let Some(tcp) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() else {
        return;
    };
    // The descriptor shares the socket's non-blocking mode, so a peek never waits.
    match tcp.as_fd().try_clone_to_owned() {
        Ok(fd) => {
            data.insert(ClientSocket(Arc::new(TcpStream::from(fd))));
        }
        Err(e) => tracing::warn!(error = %e, "could not keep a handle on a client's socket"),
    }
}

/// Resolves once the client of `socket` has gone; never without a socket.
async fn gone(socket: Option<ClientSocket>) {
    let Some(socket) = socket else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(CHECK_EVERY).await;
        if socket.gone() {
            return;
        }
    }
}

/// Middleware for reads: answers the request as usual, unless its client goes away first; then
/// the handler is dropped (and with it any query in flight) and the request is logged as `499`,
/// nginx's code for a request its client closed.
async fn cancel_when_gone(
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let socket = req.conn_data::<ClientSocket>().cloned();
    let request = req.request().clone();
    tokio::select! {
        res = next.call(req) => res,
        () = gone(socket) => {
            metrics::counter!(telemetry::READS_ABANDONED).increment(1);
            tracing::info!(path = request.path(), "client gone; its read is cancelled");
            let res = ApiError::client_closed_request().error_response();
            Ok(ServiceResponse::new(request, res.map_into_boxed_body()))
        }
    }
}

/// A read route, cancelled when its client goes away.
pub fn read(route: Route) -> Route {
    route.wrap(from_fn(cancel_when_gone))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;

    #[test]
    fn a_socket_is_gone_once_its_peer_closes_it_and_not_before() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let socket = ClientSocket(Arc::new(server));
        assert!(!socket.gone(), "nothing sent yet");
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        assert!(!socket.gone(), "a pipelined request is not a goodbye");
        drop(client);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        // The peer's FIN arrives asynchronously; the data it sent first is still unread.
        let mut buf = [0u8; 64];
        while !socket.gone() {
            let _ = std::io::Read::read(&mut &*socket.0, &mut buf);
            assert!(
                std::time::Instant::now() < deadline,
                "the close was never seen"
            );
        }
    }
}
