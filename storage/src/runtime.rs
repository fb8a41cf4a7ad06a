//! A small tokio runtime of the crate's own, for the clients behind synchronous traits (the
//! S3 blob store, the Transit key provider): a call waits for its request from any thread,
//! async or not, and never needs the caller's runtime.

use std::sync::mpsc;

use crate::StorageError;

/// The runtime, shared by a client and everything it hands out (readers, writers): it lives
/// as long as any of them.
pub(crate) struct OwnRuntime(Option<tokio::runtime::Runtime>);

impl OwnRuntime {
    /// Two worker threads named `name`.
    pub(crate) fn new(name: &str) -> Result<OwnRuntime, StorageError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(name)
            .enable_all()
            .build()
            .map_err(|e| StorageError::io(format!("the {name} runtime"), e))?;
        Ok(OwnRuntime(Some(runtime)))
    }

    pub(crate) fn handle(&self) -> &tokio::runtime::Handle {
        self.0
            .as_ref()
            .expect("the runtime is taken only when it is dropped")
            .handle()
    }
}

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        // The last holder may be dropped on an async thread, where waiting for a runtime's
        // threads is not allowed: they are left to finish on their own.
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Runs `request` on `runtime` and waits for its result (from any thread).
pub(crate) fn run_on<T: Send + 'static>(
    runtime: &tokio::runtime::Handle,
    request: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    let (done, result) = mpsc::sync_channel(1);
    runtime.spawn(async move {
        let _ = done.send(request.await);
    });
    result
        .recv()
        .expect("the runtime runs every request it is given to its end")
}
