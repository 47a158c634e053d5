//! `orrery control-plane` and `orrery host`: the platform's two roles as
//! separate processes (`orrery start` runs both in one, in `main`).
//!
//! Owns: composing each process from the crates, the host's registration
//! (waiting for the control plane) and its host id file. Does not own: the
//! calls between them (`remote`, `pool`), or any rule.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use orrery_api::manifest::VerifyingKey;
use orrery_objstore::{ModuleStore, ObjectStoreUrl};
use storage::DbOptions;
use tenant_host::hosting::{Host, HostConfig};
use tenant_host::registry::Registry;

use crate::{pool, remote, signing};

pub(crate) struct ControlPlaneArgs {
    pub(crate) operator: crate::OperatorArgs,
    pub(crate) metadata: String,
    pub(crate) object_store: String,
    pub(crate) signing_key: PathBuf,
    pub(crate) listen_addr: String,
    pub(crate) join_secret: String,
    pub(crate) behind_tls: bool,
    pub(crate) invite_only: bool,
}

pub(crate) struct HostArgs {
    pub(crate) control_plane: String,
    pub(crate) object_store: String,
    pub(crate) cache_dir: PathBuf,
    pub(crate) listen_addr: String,
    pub(crate) advertise_url: Option<String>,
    pub(crate) host_id: Option<String>,
    pub(crate) join_secret: String,
    pub(crate) module_public_key: Option<String>,
    pub(crate) domain: String,
    pub(crate) options: DbOptions,
    pub(crate) durability: orrery_api::Durability,
    pub(crate) retention_days: u64,
}

fn check_join_secret(secret: &str) -> anyhow::Result<()> {
    if secret.chars().count() < control_api::JOIN_SECRET_CHARS_MIN {
        bail!(
            "the join secret has {} characters; use at least {} (e.g. `openssl rand -hex 32`)",
            secret.chars().count(),
            control_api::JOIN_SECRET_CHARS_MIN
        );
    }
    Ok(())
}

fn async_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("api")
        .build()
        .context("start the async runtime")
}

fn module_store(url: &str) -> anyhow::Result<ModuleStore> {
    let url = ObjectStoreUrl::parse(url).context("--object-store")?;
    ModuleStore::open(&url).with_context(|| format!("open the object store {url}"))
}

/// `orrery control-plane`: serves the control-plane API (`/api/v1`) and the
/// internal API hosts call (`/internal/v1`) until SIGTERM or Ctrl-C.
pub(crate) fn control_plane(args: ControlPlaneArgs) -> anyhow::Result<()> {
    check_join_secret(&args.join_secret)?;
    let stop_rx = crate::stop_signal()?;
    let runtime = async_runtime()?;
    let modules = module_store(&args.object_store)?;
    let key = signing::load_or_create_key(&args.signing_key)?;
    let public_key = key.verifying_key();
    let validator = orrery_module::Runtime::new().context("start the module runtime")?;
    let signup = if args.invite_only {
        control_plane::SignupMode::InviteOnly
    } else {
        control_plane::SignupMode::Open
    };
    let plane = runtime
        .block_on(control_plane::Store::connect(&args.metadata))
        .context("open the metadata store")?;
    let plane = Arc::new(
        control_plane::ControlPlane::new(
            plane,
            control_plane::Config {
                signup,
                ..control_plane::Config::default()
            },
        )
        .with_module_signing(control_plane::ModuleSigning::new(
            modules,
            key,
            Arc::new(signing::RuntimeValidator::Own(validator)),
        )),
    );
    runtime.block_on(crate::bootstrap_operator(&plane, &args.operator))?;
    let hosts = pool::HttpHosts::new(plane.clone(), args.join_secret.clone())?;
    let api = control_api::router(Arc::new(
        control_api::ApiState::new(
            plane.clone(),
            control_api::ApiConfig {
                behind_tls: args.behind_tls,
            },
        )
        .with_hosts(Arc::new(hosts)),
    ));
    let internal = control_api::internal_router(Arc::new(control_api::InternalState {
        control_plane: plane,
        join_secret: args.join_secret,
    }));
    let api = api.into_service::<axum::body::Body>();
    let internal = internal.into_service::<axum::body::Body>();
    let dispatch = tower_dispatch(api, internal);
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(&args.listen_addr))
        .with_context(|| format!("listen on {}", args.listen_addr))?;
    let local = listener.local_addr().context("read the listen address")?;
    let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(async move {
        axum::serve(
            listener,
            axum::Router::new()
                .fallback_service(dispatch)
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = shutdown_rx.await;
        })
        .await
    });
    tracing::info!(
        module_public_key = %public_key,
        "orrery control plane started; listening on http://{local}; SIGTERM or Ctrl-C stops"
    );
    stop_rx.recv().context("wait for a stop signal")?;
    tracing::info!("stopping: finishing requests in flight");
    let _ = shutdown_tx.send(());
    match runtime.block_on(async { tokio::time::timeout(Duration::from_secs(30), server).await }) {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "the API stopped with an error"),
        Ok(Err(e)) => tracing::warn!(error = %e, "the API task failed"),
        Err(_) => tracing::warn!("requests still running after 30 s; stopping anyway"),
    }
    runtime.shutdown_timeout(Duration::from_secs(5));
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Paths under `/internal/` to `internal`, the rest to `api`.
fn tower_dispatch(
    api: axum::routing::RouterIntoService<axum::body::Body>,
    internal: axum::routing::RouterIntoService<axum::body::Body>,
) -> impl tower::Service<
    axum::extract::Request,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone
       + Send
       + 'static {
    tower::service_fn(move |request: axum::extract::Request| {
        let service = if request.uri().path().starts_with("/internal/") {
            internal.clone()
        } else {
            api.clone()
        };
        tower::ServiceExt::oneshot(service, request)
    })
}

/// This host's id: `--host-id`, or the one kept in `cache_dir/host-id`
/// (made on first start).
fn host_id(cache_dir: &Path, given: Option<String>) -> anyhow::Result<String> {
    if let Some(id) = given {
        return Ok(id);
    }
    let path = cache_dir.join("host-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
    }
    let id = format!("host-{}", hex::encode(orrery_api::ids::random_bytes::<4>()));
    durable::fs::write_atomic(&path, id.as_bytes())
        .with_context(|| format!("write {}", path.display()))?;
    Ok(id)
}

/// Registers with the control plane, retrying for up to a minute while it
/// is not reachable (it may be starting); a refusal (wrong join secret, bad
/// id) ends at once.
async fn register(
    client: &remote::ControlPlaneClient,
    address: &str,
) -> anyhow::Result<control_api::RegisteredJson> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut wait = Duration::from_millis(100);
    loop {
        match client.register(address).await {
            Ok(registered) => return Ok(registered),
            Err(orrery_edge::access::Refusal::Unavailable(why))
                if tokio::time::Instant::now() < deadline =>
            {
                tracing::warn!(error = %why, "the control plane is not reachable yet; retrying");
                // sleep-ok: backoff between attempts to reach a remote process.
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(2));
            }
            Err(refusal) => bail!("the control plane refused to register this host: {refusal:?}"),
        }
    }
}

/// `orrery host`: one pooled host until SIGTERM or Ctrl-C.
pub(crate) fn host(args: HostArgs) -> anyhow::Result<()> {
    check_join_secret(&args.join_secret)?;
    let stop_rx = crate::stop_signal()?;
    let databases_dir = args.cache_dir.join("databases");
    std::fs::create_dir_all(&databases_dir)
        .with_context(|| format!("create {}", databases_dir.display()))?;
    let runtime = async_runtime()?;
    let id = host_id(&args.cache_dir, args.host_id)?;
    let client =
        remote::ControlPlaneClient::new(&args.control_plane, args.join_secret.clone(), id.clone())?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(&args.listen_addr))
        .with_context(|| format!("listen on {}", args.listen_addr))?;
    let local = listener.local_addr().context("read the listen address")?;
    let address = args
        .advertise_url
        .unwrap_or_else(|| format!("http://{local}"));
    let registered = runtime.block_on(register(&client, &address))?;
    let offered = match &registered.module_public_key {
        Some(text) => Some(
            VerifyingKey::parse(text)
                .map_err(|e| anyhow::anyhow!("the control plane's module key {text:?}: {e}"))?,
        ),
        None => None,
    };
    let key = match (&args.module_public_key, offered) {
        (Some(text), offered) => {
            let configured = VerifyingKey::parse(text)
                .map_err(|e| anyhow::anyhow!("--module-public-key {text:?}: {e}"))?;
            if offered.is_some_and(|k| k != configured) {
                bail!(
                    "the control plane signs modules with another key than --module-public-key; \
                     refusing to serve"
                );
            }
            configured
        }
        (None, Some(offered)) => offered,
        (None, None) => {
            bail!("the control plane does not sign modules; a host runs only signed modules")
        }
    };
    let module_runtime = orrery_module::Runtime::with_config(orrery_module::RuntimeConfig {
        artifact_dir: Some(args.cache_dir.join("artifacts")),
        ..orrery_module::RuntimeConfig::default()
    })
    .context("start the module runtime")?;
    let bare = crate::open_bare_storage(&databases_dir, &args.options)?;
    let verifier = signing::ObjectStoreVerifier {
        store: module_store(&args.object_store)?,
        key,
        runtime: runtime.handle().clone(),
    };
    let host = Arc::new(Host::new(module_runtime, HostConfig::default()));
    // Databases are copied to the object store; those the control plane
    // placed here and the cache lacks are restored from it.
    let replica = Arc::new(crate::replica::ObjectStoreReplica::open(
        &ObjectStoreUrl::parse(&args.object_store).context("--object-store")?,
        runtime.handle().clone(),
        Some(registered.databases.iter().cloned().collect()),
        args.durability,
        args.retention_days,
    )?);
    let registry = Arc::new(
        Registry::open_replicated(
            &databases_dir,
            host,
            args.options,
            Some(Arc::new(verifier)),
            Some(replica.clone()),
        )
        .context("open the databases of the cache directory")?,
    );
    let keys = orrery_edge::auth::Keys::load_or_create(&args.cache_dir.join("keys"))
        .context("load or create the token signing key")?;
    let client = Arc::new(client);
    let state = Arc::new(orrery_edge::ApiState {
        keys,
        registry: registry.clone(),
        ws: Default::default(),
        tenant_domain: Some(args.domain),
        access: orrery_edge::access::Access {
            authenticator: Some(client.clone()),
            open_publishing: false,
            signer: Some(client.clone()),
        },
        backups: Some(replica.clone()),
    });
    let internal = pool::host_router(
        registry.clone(),
        replica.clone(),
        args.join_secret,
        args.control_plane.clone(),
    );
    let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(orrery_edge::serve_with(
        listener,
        state,
        internal,
        async move {
            let _ = shutdown_rx.await;
        },
    ));
    runtime.spawn(remote::heartbeats((*client).clone()));
    let databases = registry.all().len() + bare.len();
    tracing::info!(
        host = %id,
        control_plane = %args.control_plane,
        databases,
        "orrery host started; listening on http://{local}; SIGTERM or Ctrl-C stops"
    );
    crate::serve_until_stopped(
        stop_rx,
        shutdown_tx,
        runtime,
        server,
        &registry,
        &bare,
        Some(&replica),
    )
}
