//! The gRPC server on `grpc_addr`: the Rate Limit Service, the standard
//! health service (`grpc.health.v1.Health`, SERVING until shutdown begins)
//! and server reflection (v1 and v1alpha), so `grpcurl` needs no protos.

use std::sync::Arc;

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::{
    RateLimitService, RateLimitServiceServer,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;

use super::decide::Failure;
use super::forward;
use super::{Answer, DESCRIPTORS, UNKNOWN_DOMAIN};
use crate::state::Shared;

/// The largest ShouldRateLimit request read (a call of 64 descriptors of
/// 16 entries is a few KiB).
const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// The Rate Limit Service on the server's state.
#[derive(Debug, Clone)]
pub struct Service {
    shared: Arc<Shared>,
}

impl Service {
    pub fn new(shared: Arc<Shared>) -> Service {
        Service { shared }
    }

    /// Decides one call, as the gRPC method answers it: here, or in
    /// managed cluster mode with the descriptors of other nodes' slots
    /// forwarded to them. Counts the call by domain and answer.
    pub async fn answer(&self, request: RateLimitRequest) -> Result<RateLimitResponse, Status> {
        let shared = &self.shared;
        let known = shared.rls.domains().get(&request.domain).is_some();
        let decided = if shared.shutting_down() {
            Err(Failure::Unavailable("tollgate is shutting down".into()))
        } else if shared.cluster.routes() {
            forward::answer(shared, &request).await
        } else {
            forward::decide_here(shared, &request, true)
        };
        let (answer, result) = match decided {
            Ok(r) if r.overall_code == Code::OverLimit as i32 => (Answer::OverLimit, Ok(r)),
            Ok(r) => (Answer::Ok, Ok(r)),
            Err(Failure::Invalid(m)) => (Answer::InvalidArgument, Err(Status::invalid_argument(m))),
            Err(Failure::Precondition(m)) => (
                Answer::FailedPrecondition,
                Err(Status::failed_precondition(m)),
            ),
            Err(Failure::OutOfMemory(m)) => (
                Answer::ResourceExhausted,
                Err(Status::resource_exhausted(m)),
            ),
            Err(Failure::Unavailable(m)) => (Answer::Unavailable, Err(Status::unavailable(m))),
        };
        let label = if known {
            request.domain.as_str()
        } else {
            UNKNOWN_DOMAIN
        };
        shared.rls.counts.count(label, answer);
        result
    }
}

#[tonic::async_trait]
impl RateLimitService for Service {
    async fn should_rate_limit(
        &self,
        request: Request<RateLimitRequest>,
    ) -> Result<Response<RateLimitResponse>, Status> {
        self.answer(request.into_inner()).await.map(Response::new)
    }
}

/// Serves the Rate Limit Service, health and reflection on `listener`
/// until `stop` changes; then health says NOT_SERVING, calls still
/// arriving are answered UNAVAILABLE, and the connections are closed
/// (HTTP/2 GOAWAY, calls in progress finished). Each connection is served
/// by hyper's HTTP/2 server on one of the connection threads (`workers`,
/// round-robin, as RESP connections are), with tonic's routes.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    workers: Vec<tokio::runtime::Handle>,
) {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<RateLimitServiceServer<Service>>()
        .await;
    let reflection = |b: tonic_reflection::server::Builder<'static>| {
        b.register_encoded_file_descriptor_set(DESCRIPTORS)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let v1 = reflection(tonic_reflection::server::Builder::configure()).build_v1();
    let v1alpha = reflection(tonic_reflection::server::Builder::configure()).build_v1alpha();
    let (v1, v1alpha) = match (v1, v1alpha) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!("gRPC reflection not served: {e}");
            return;
        }
    };
    let addr = listener.local_addr().ok();
    if let Some(addr) = addr {
        let _ = shared.rls.addr.set(addr);
        tracing::info!("Envoy rate limit service (gRPC) listening on {addr}");
    }
    let routes = tonic::service::Routes::new(health_service)
        .add_service(v1)
        .add_service(v1alpha)
        .add_service(
            RateLimitServiceServer::new(Service::new(shared.clone()))
                .max_decoding_message_size(MAX_REQUEST_BYTES),
        );
    let mut connections = tokio::task::JoinSet::new();
    let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let refused = crate::throttle_log::Throttled::default();
    let mut next = 0usize;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!("gRPC accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        // As many gRPC connections as RESP clients may be open, apart.
        if open.load(std::sync::atomic::Ordering::Relaxed) >= shared.config.max_clients {
            if let Some(left_out) = refused.admit(std::time::Instant::now()) {
                tracing::warn!(
                    more_since_last_line = left_out,
                    "gRPC connection refused: max_clients connections are open"
                );
            }
            continue;
        }
        open.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let opened = scopeguard::guard(open.clone(), |open| {
            open.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        });
        // Replies go out at once: no Nagle delay behind the peer's delayed ACK.
        let _ = stream.set_nodelay(true);
        let Ok(stream) = stream.into_std() else {
            continue;
        };
        let (routes, mut stop) = (routes.clone(), stop.clone());
        // Each connection on one connection thread, as RESP's are: a call
        // is read, decided and answered without waking another thread.
        let worker = &workers[next % workers.len()];
        next = next.wrapping_add(1);
        connections.spawn_on(
            async move {
                let _opened = opened;
                let Ok(stream) = tokio::net::TcpStream::from_std(stream) else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(routes);
                let mut builder =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new());
                // gRPC has no use for a Date header: not formatted per reply.
                builder.auto_date_header(false);
                let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                tokio::pin!(conn);
                tokio::select! {
                    _ = conn.as_mut() => {}
                    _ = stop.changed() => {
                        conn.as_mut().graceful_shutdown();
                        let _ = conn.await;
                    }
                }
            },
            worker,
        );
    }
    health
        .set_not_serving::<RateLimitServiceServer<Service>>()
        .await;
    while connections.join_next().await.is_some() {}
}
