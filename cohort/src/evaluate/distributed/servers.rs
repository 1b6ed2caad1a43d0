//! `cohort scheduler` and `cohort executor`: Ballista 55's scheduler and executor,
//! embedded, with Cohort's bitmap aggregate and object stores (s3, gs, az from the same
//! environment variables as the CLI) registered on both.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ballista_core::config::TaskSchedulingPolicy;
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_core::utils::default_session_builder;
use ballista_core::RuntimeProducer;
use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::{create_scheduler, start_grpc_service_with_listener};
use ballista_scheduler::SessionBuilder;
use cohort_snapshot::Stores;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::{FunctionRegistry, SessionStateBuilder};
use datafusion::prelude::SessionConfig;
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};

use super::{bitmap_agg, GRPC_MAX_MESSAGE};
use crate::evaluate::engine::store_registry;
use crate::{Error, Result};

/// How `cohort scheduler` runs.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// After how long without a heartbeat an executor counts as lost (its tasks rerun).
    pub executor_timeout: Duration,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            executor_timeout: Duration::from_secs(180),
        }
    }
}

/// Runs a scheduler on `listener` until the process stops. Sessions read through `stores`
/// and know Cohort's aggregate.
pub async fn run_scheduler(
    listener: tokio::net::TcpListener,
    options: SchedulerOptions,
    stores: Arc<Stores>,
) -> Result<()> {
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io("scheduler socket", e))?;
    let registry = store_registry(&stores);
    let builder: SessionBuilder = Arc::new(move |config: SessionConfig| {
        let state = default_session_builder(config)?;
        let runtime = RuntimeEnvBuilder::from_runtime_env(state.runtime_env())
            .with_object_store_registry(registry.clone())
            .build_arc()?;
        let mut state = SessionStateBuilder::new_from_existing(state)
            .with_runtime_env(runtime)
            .build();
        state.register_udaf(Arc::new(bitmap_agg::udaf()))?;
        Ok(state)
    });
    let timeout = options.executor_timeout.as_secs().max(1);
    let config = SchedulerConfig {
        bind_host: addr.ip().to_string(),
        bind_port: addr.port(),
        external_host: addr.ip().to_string(),
        scheduling_policy: TaskSchedulingPolicy::PushStaged,
        executor_timeout_seconds: timeout,
        expire_dead_executor_interval_seconds: (timeout / 4).clamp(1, 15),
        no_executors_grace_period_seconds: timeout,
        grpc_server_max_decoding_message_size: GRPC_MAX_MESSAGE as u32,
        grpc_server_max_encoding_message_size: GRPC_MAX_MESSAGE as u32,
        grpc_client_max_message_size: GRPC_MAX_MESSAGE as u32,
        override_session_builder: Some(builder),
        ..Default::default()
    };
    let cannot_start = |e: ballista_core::error::BallistaError| Error::Server {
        role: "scheduler",
        addr: addr.to_string(),
        message: format!("cannot start: {e}"),
    };
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(cannot_start)?;
    let scheduler =
        create_scheduler::<LogicalPlanNode, PhysicalPlanNode>(cluster, Arc::new(config))
            .await
            .map_err(cannot_start)?;
    tracing::info!(%addr, "scheduler listening");
    start_grpc_service_with_listener(listener, scheduler)
        .await
        .map_err(|e| Error::Server {
            role: "scheduler",
            addr: addr.to_string(),
            message: format!("stopped: {e}"),
        })
}

/// How `cohort executor` runs.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// The scheduler to register with.
    pub scheduler: SocketAddr,
    /// Where the executor's Arrow Flight service (shuffle and results) listens.
    pub bind: SocketAddr,
    /// The port of the executor's gRPC service (the scheduler launches tasks through it).
    pub grpc_port: u16,
    /// Shuffle files and spills.
    pub work_dir: PathBuf,
    /// Tasks run at once (0: one per core).
    pub concurrent_tasks: usize,
    /// Seconds between heartbeats to the scheduler.
    pub heartbeat: Duration,
}

/// Runs an executor until the process is stopped (ctrl-c or SIGTERM: it drains its tasks
/// and deregisters).
pub async fn run_executor(options: ExecutorOptions, stores: Arc<Stores>) -> Result<()> {
    std::fs::create_dir_all(&options.work_dir)
        .map_err(|e| Error::io(options.work_dir.display(), e))?;
    let work_dir = options.work_dir.display().to_string();
    let mut state = default_session_builder(SessionConfig::new())?;
    state.register_udaf(Arc::new(bitmap_agg::udaf()))?;
    let functions = BallistaFunctionRegistry::from(&state);
    let registry = store_registry(&stores);
    let temp = work_dir.clone();
    let runtime: RuntimeProducer = Arc::new(move |_config: &SessionConfig| {
        RuntimeEnvBuilder::new()
            .with_object_store_registry(registry.clone())
            .with_temp_file_path(temp.clone())
            .build_arc()
    });
    let config = ExecutorProcessConfig {
        bind_host: options.bind.ip().to_string(),
        external_host: Some(options.bind.ip().to_string()),
        port: options.bind.port(),
        grpc_port: options.grpc_port,
        scheduler_host: options.scheduler.ip().to_string(),
        scheduler_port: options.scheduler.port(),
        scheduler_connect_timeout_seconds: 30,
        vcores: options.concurrent_tasks,
        task_scheduling_policy: TaskSchedulingPolicy::PushStaged,
        work_dir: Some(work_dir),
        grpc_max_decoding_message_size: GRPC_MAX_MESSAGE as u32,
        grpc_max_encoding_message_size: GRPC_MAX_MESSAGE as u32,
        executor_heartbeat_interval_seconds: options.heartbeat.as_secs().max(1),
        override_function_registry: Some(Arc::new(functions)),
        override_runtime_producer: Some(runtime),
        ..Default::default()
    };
    tracing::info!(bind = %options.bind, scheduler = %options.scheduler, "executor starting");
    start_executor_process(Arc::new(config))
        .await
        .map_err(|e| Error::Server {
            role: "executor",
            addr: options.bind.to_string(),
            message: format!("stopped: {e}"),
        })
}
