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
        let label = if known {
            request.domain.clone()
        } else {
            UNKNOWN_DOMAIN.to_string()
        };
        let decided = if *shared.shutdown_signal().borrow() {
            Err(Failure::Unavailable("tollgate is shutting down".into()))
        } else if shared.cluster.routes() {
            forward::answer(shared, request).await
        } else {
            forward::decide_here(shared, &request)
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
        shared.rls.counts.count(&label, answer);
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
/// arriving are answered UNAVAILABLE, and the connections are closed.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
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
    // Replies go out at once: no Nagle delay behind the peer's delayed ACK.
    let incoming = tokio_stream::StreamExt::map(
        tokio_stream::wrappers::TcpListenerStream::new(listener),
        |accepted| {
            accepted.inspect(|stream| {
                let _ = stream.set_nodelay(true);
            })
        },
    );
    let stopped = async move {
        let _ = stop.changed().await;
        health
            .set_not_serving::<RateLimitServiceServer<Service>>()
            .await;
    };
    if let Some(addr) = addr {
        let _ = shared.rls.addr.set(addr);
        tracing::info!("Envoy rate limit service (gRPC) listening on {addr}");
    }
    let served = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(v1)
        .add_service(v1alpha)
        .add_service(RateLimitServiceServer::new(Service::new(shared)))
        .serve_with_incoming_shutdown(incoming, stopped)
        .await;
    if let Err(e) = served {
        tracing::error!("gRPC server stopped: {e}");
    }
}
