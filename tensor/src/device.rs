//! Device selection: pick a backend and adapter, request its real limits and the
//! optional features kiln uses (SHADER_F16, SUBGROUP, TIMESTAMP_QUERY), and keep the
//! per-device caches (shader modules, pipelines, buffer pool, params arenas).

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::bind_cache::BindGroupCache;
use crate::counters::{CounterSnapshot, Counters};
use crate::error::{Result, TensorError};
use crate::pipeline_cache::{describe, key_hash, PipelineCache};
use crate::pool::BufferPool;

/// Which graphics API wgpu should use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// Every native backend; the first adapter that is not a CPU wins.
    #[default]
    Auto,
    /// Vulkan only.
    Vulkan,
    /// Metal only.
    Metal,
    /// Direct3D 12 only.
    Dx12,
    /// OpenGL / OpenGL ES only.
    Gl,
}

impl BackendChoice {
    /// The wgpu backend set this choice enumerates; `Auto` is the primary backends plus GL.
    pub fn backends(self) -> wgpu::Backends {
        match self {
            BackendChoice::Auto => wgpu::Backends::PRIMARY | wgpu::Backends::GL,
            BackendChoice::Vulkan => wgpu::Backends::VULKAN,
            BackendChoice::Metal => wgpu::Backends::METAL,
            BackendChoice::Dx12 => wgpu::Backends::DX12,
            BackendChoice::Gl => wgpu::Backends::GL,
        }
    }

    /// The backend from the `KILN_BACKEND` environment variable, `Auto` if unset.
    pub fn from_env() -> Result<Self> {
        match std::env::var("KILN_BACKEND") {
            Ok(v) if !v.trim().is_empty() => v.parse(),
            _ => Ok(BackendChoice::Auto),
        }
    }
}

impl FromStr for BackendChoice {
    type Err = TensorError;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(BackendChoice::Auto),
            "vulkan" | "vk" => Ok(BackendChoice::Vulkan),
            "metal" | "mtl" => Ok(BackendChoice::Metal),
            "dx12" | "d3d12" => Ok(BackendChoice::Dx12),
            "gl" | "gles" | "opengl" => Ok(BackendChoice::Gl),
            _ => Err(TensorError::UnknownBackend(s.to_string())),
        }
    }
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            BackendChoice::Auto => "auto",
            BackendChoice::Vulkan => "vulkan",
            BackendChoice::Metal => "metal",
            BackendChoice::Dx12 => "dx12",
            BackendChoice::Gl => "gl",
        };
        f.write_str(s)
    }
}

/// How to choose a device: backend and optional adapter index (as listed by `kiln devices`).
#[derive(Clone, Debug, Default)]
pub struct DeviceOptions {
    /// Which graphics API to enumerate adapters on.
    pub backend: BackendChoice,
    /// Index into [`list_adapters`] for that backend; `None` takes the first.
    pub adapter: Option<usize>,
}

const INSTALL_HINT: &str = "Install a GPU driver; on a machine without a GPU install the software \
Vulkan driver (Debian/Ubuntu: `sudo apt-get install mesa-vulkan-drivers libvulkan1`).";

fn instance(backend: BackendChoice) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = backend.backends();
    desc.flags = wgpu::InstanceFlags::empty();
    wgpu::Instance::new(desc)
}

/// Every adapter the backend exposes, in the order `--adapter N` counts them.
pub fn list_adapters(backend: BackendChoice) -> Vec<wgpu::Adapter> {
    let inst = instance(backend);
    let mut adapters = pollster::block_on(inst.enumerate_adapters(backend.backends()));
    // Stable order: real GPUs first, then by backend (Vulkan before GL), then by name.
    adapters.sort_by_key(|a| {
        let info = a.get_info();
        (device_type_rank(info.device_type), backend_rank(info.backend), info.name.clone())
    });
    adapters
}

fn device_type_rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

fn backend_rank(b: wgpu::Backend) -> u8 {
    match b {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        wgpu::Backend::Gl => 1,
        _ => 2,
    }
}

/// Optional features kiln asks for when the adapter has them.
pub fn wanted_features() -> wgpu::Features {
    wgpu::Features::SHADER_F16 | wgpu::Features::SUBGROUP | wgpu::Features::TIMESTAMP_QUERY
}

/// A GPU device plus the caches kiln keeps for it. Cloning is cheap (shared handle).
#[derive(Clone)]
pub struct Device {
    inner: Arc<DeviceInner>,
}

struct DeviceInner {
    adapter: wgpu::Adapter,
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    features: wgpu::Features,
    pool: BufferPool,
    modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
    pipelines: Mutex<PipelineCache>,
    bind_groups: Mutex<BindGroupCache>,
    /// `KILN_NO_BIND_CACHE=1`: create every bind group afresh (the old behaviour, to compare).
    cache_bind_groups: bool,
    params_arenas: Mutex<Vec<wgpu::Buffer>>,
    uncaptured: Arc<Mutex<Vec<String>>>,
    /// Why the device was lost (wgpu's device-lost callback), once it is.
    lost: Arc<Mutex<Option<String>>>,
    counters: Counters,
    use_subgroups: AtomicBool,
    use_f16: AtomicBool,
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Device({} on {:?})", self.inner.info.name, self.inner.info.backend)
    }
}

impl Device {
    /// Open a device as `opts` says. `--adapter N` indexes `list_adapters(backend)`;
    /// without it the first adapter in that order is used.
    pub fn new(opts: &DeviceOptions) -> Result<Device> {
        let adapters = list_adapters(opts.backend);
        if adapters.is_empty() {
            return Err(TensorError::NoAdapter { backend: opts.backend.to_string(), hint: INSTALL_HINT.to_string() });
        }
        let index = opts.adapter.unwrap_or(0);
        let count = adapters.len();
        let adapter = adapters.into_iter().nth(index).ok_or_else(|| TensorError::AdapterIndex {
            index,
            count,
            backend: opts.backend.to_string(),
        })?;
        Device::from_adapter(adapter)
    }

    /// Open the default device: backend from `KILN_BACKEND`, first adapter.
    pub fn from_env() -> Result<Device> {
        Device::new(&DeviceOptions { backend: BackendChoice::from_env()?, adapter: None })
    }

    /// Open a device on `adapter` with the adapter's own limits and those of
    /// [`wanted_features`] it has. Validation errors are recorded instead of panicking and
    /// returned by the next [`Device::sync`]; a device loss is recorded for [`Device::lost`].
    pub fn from_adapter(adapter: wgpu::Adapter) -> Result<Device> {
        let info = adapter.get_info();
        // wgpu's default limits are far below what real GPUs allow: ask for the adapter's own.
        let limits = adapter.limits();
        let features = adapter.features() & wanted_features();
        let desc = wgpu::DeviceDescriptor {
            label: Some("kiln"),
            required_features: features,
            required_limits: limits.clone(),
            memory_hints: wgpu::MemoryHints::Performance,
            ..Default::default()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc))
            .map_err(|source| TensorError::RequestDevice { adapter: info.name.clone(), source })?;
        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = uncaptured.clone();
        // Without a handler wgpu panics on a validation error; record it and report it
        // as an error at the next synchronisation point instead.
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            sink.lock().unwrap().push(e.to_string());
        }));
        let lost = Arc::new(Mutex::new(None));
        let lost_sink = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            let why = if message.is_empty() { format!("{reason:?}") } else { format!("{reason:?}: {message}") };
            *lost_sink.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
        });
        let pool = BufferPool::new(device.clone());
        Ok(Device {
            inner: Arc::new(DeviceInner {
                adapter,
                device,
                queue,
                info,
                limits,
                features,
                pool,
                modules: Mutex::new(HashMap::new()),
                pipelines: Mutex::new(PipelineCache::default()),
                bind_groups: Mutex::new(BindGroupCache::default()),
                cache_bind_groups: !env_flag("KILN_NO_BIND_CACHE"),
                params_arenas: Mutex::new(Vec::new()),
                uncaptured,
                lost,
                counters: Counters::default(),
                use_subgroups: AtomicBool::new(
                    features.contains(wgpu::Features::SUBGROUP) && !env_flag("KILN_NO_SUBGROUPS"),
                ),
                use_f16: AtomicBool::new(features.contains(wgpu::Features::SHADER_F16) && !env_flag("KILN_NO_F16")),
            }),
        })
    }

    /// Why the device was lost (driver reset, removal, `destroy`), or `None` while it
    /// works. Nothing recorded on a lost device runs; a server stops on it.
    pub fn lost(&self) -> Option<String> {
        self.inner.lost.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The underlying wgpu device.
    pub fn wgpu(&self) -> &wgpu::Device {
        &self.inner.device
    }
    /// The device's queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.inner.queue
    }
    /// The adapter the device was opened on.
    pub fn adapter(&self) -> &wgpu::Adapter {
        &self.inner.adapter
    }
    /// The adapter's name, backend, device type and driver.
    pub fn info(&self) -> &wgpu::AdapterInfo {
        &self.inner.info
    }
    /// The backend the adapter belongs to.
    pub fn backend(&self) -> wgpu::Backend {
        self.inner.info.backend
    }
    /// The limits the device was opened with (the adapter's own).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.inner.limits
    }
    /// The optional features enabled on the device: those of [`wanted_features`] the adapter has.
    pub fn features(&self) -> wgpu::Features {
        self.inner.features
    }
    /// Whether TIMESTAMP_QUERY is enabled, so [`crate::Recorder::with_timing`] can time dispatches.
    pub fn has_timestamps(&self) -> bool {
        self.inner.features.contains(wgpu::Features::TIMESTAMP_QUERY)
    }
    /// The device's buffer pool, which [`crate::Tensor::empty`] draws from.
    pub fn pool(&self) -> &BufferPool {
        &self.inner.pool
    }

    /// Whether kernels should use their subgroup variants: the adapter has SUBGROUP, and
    /// neither `KILN_NO_SUBGROUPS=1` nor [`Device::set_subgroups`] turned them off.
    pub fn subgroups(&self) -> bool {
        self.inner.use_subgroups.load(Ordering::Relaxed)
    }

    /// Turn the subgroup kernel variants off (`false`) or back on; on only takes effect
    /// when the adapter has SUBGROUP. Tests use it to run both paths on one adapter.
    pub fn set_subgroups(&self, on: bool) {
        let on = on && self.inner.features.contains(wgpu::Features::SUBGROUP);
        self.inner.use_subgroups.store(on, Ordering::Relaxed);
    }

    /// Whether kernels should use their f16-arithmetic variants: the adapter has
    /// SHADER_F16, and neither `KILN_NO_F16=1` nor [`Device::set_f16`] turned them off.
    pub fn f16(&self) -> bool {
        self.inner.use_f16.load(Ordering::Relaxed)
    }

    /// Turn the f16-arithmetic kernel variants off (`false`) or back on (only where the
    /// adapter has SHADER_F16).
    pub fn set_f16(&self, on: bool) {
        let on = on && self.inner.features.contains(wgpu::Features::SHADER_F16);
        self.inner.use_f16.store(on, Ordering::Relaxed);
    }

    /// The largest tensor a single kernel binding can see, in bytes.
    pub fn max_binding_bytes(&self) -> u64 {
        self.inner.limits.max_storage_buffer_binding_size.min(self.inner.limits.max_buffer_size)
    }

    /// Refuse a tensor of `bytes` bytes if the adapter cannot bind it.
    pub fn check_binding_size(&self, what: &str, bytes: u64) -> Result<()> {
        let limit = self.max_binding_bytes();
        if bytes > limit {
            return Err(TensorError::TooLarge {
                what: what.to_string(),
                bytes,
                limit,
                limit_name: "max_storage_buffer_binding_size",
            });
        }
        Ok(())
    }

    /// A compiled compute pipeline for `entry` in the WGSL module `module_name`,
    /// specialised by `overrides` (WGSL `override` constants); cached per device.
    pub fn pipeline(
        &self,
        module_name: &'static str,
        source: &'static str,
        entry: &str,
        overrides: &[(&str, f64)],
    ) -> Result<Arc<wgpu::ComputePipeline>> {
        // The hot path (every dispatch): hash the borrowed key, no allocation.
        let hash = key_hash(module_name, entry, overrides);
        if let Some(p) = self.inner.pipelines.lock().unwrap().get(hash, module_name, entry, overrides) {
            return Ok(p);
        }
        let key = describe(module_name, entry, overrides);
        let scope = self.inner.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = {
            let mut modules = self.inner.modules.lock().unwrap();
            modules
                .entry(module_name)
                .or_insert_with(|| {
                    let desc = wgpu::ShaderModuleDescriptor {
                        label: Some(module_name),
                        source: wgpu::ShaderSource::Wgsl(source.into()),
                    };
                    // Bounds checks stay on. naga's loop bounding (a counter added to every
                    // loop, against infinite loops in untrusted shaders) is off: its counter
                    // makes every loop's trip count unknown to the driver's compiler, and on
                    // an NVIDIA H200 the quantized matvec and decode attention ran ~10×
                    // slower with it (BENCHMARKS.md). These are kiln's own shaders, and every loop in
                    // them has a counter that only grows (or halves) towards a bound the
                    // launcher checks. KILN_LOOP_BOUNDING=1 turns it back on, to compare.
                    let checks = wgpu::ShaderRuntimeChecks {
                        bounds_checks: true,
                        force_loop_bounding: env_flag("KILN_LOOP_BOUNDING"),
                        ..wgpu::ShaderRuntimeChecks::checked()
                    };
                    // SAFETY: wgpu requires that no loop of the module runs forever when loop
                    // bounding is off; see above (kernels/wgsl, each loop bounded).
                    unsafe { self.inner.device.create_shader_module_trusted(desc, checks) }
                })
                .clone()
        };
        let pipeline = self.inner.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&key),
            layout: None,
            module: &module,
            entry_point: Some(entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: overrides,
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        if let Some(err) = pollster::block_on(scope.pop()) {
            // Drop the broken module so a fixed source can be retried in the same process.
            self.inner.modules.lock().unwrap().remove(module_name);
            return Err(TensorError::Gpu { context: format!("compiling {key}"), detail: err.to_string() });
        }
        let pipeline = Arc::new(pipeline);
        self.inner.pipelines.lock().unwrap().insert(hash, module_name, entry, overrides, pipeline.clone());
        Ok(pipeline)
    }

    /// Wait for all submitted work and report any GPU validation error seen since the last check.
    pub fn sync(&self) -> Result<()> {
        self.inner
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| TensorError::Gpu { context: "waiting for the GPU".into(), detail: e.to_string() })?;
        self.take_uncaptured_error()
    }

    pub(crate) fn take_uncaptured_error(&self) -> Result<()> {
        let mut errs = self.inner.uncaptured.lock().unwrap();
        if errs.is_empty() {
            return Ok(());
        }
        let detail = errs.join("; ");
        errs.clear();
        Err(TensorError::Gpu { context: "a previous GPU command".into(), detail })
    }

    pub(crate) fn take_params_arena(&self) -> wgpu::Buffer {
        if let Some(b) = self.inner.params_arenas.lock().unwrap().pop() {
            return b;
        }
        self.inner.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("kiln params arena"),
            size: crate::record::PARAMS_ARENA_BYTES,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// What has crossed between CPU and GPU so far (see [`CounterSnapshot`]).
    pub fn counters(&self) -> CounterSnapshot {
        self.inner.counters.snapshot(self.inner.pool.stats().allocations)
    }

    pub(crate) fn count(&self) -> &Counters {
        &self.inner.counters
    }

    pub(crate) fn return_params_arena(&self, b: wgpu::Buffer) {
        self.inner.params_arenas.lock().unwrap().push(b);
    }

    /// The device's bind-group cache (see `bind_cache.rs`).
    pub(crate) fn bind_groups(&self) -> std::sync::MutexGuard<'_, BindGroupCache> {
        self.inner.bind_groups.lock().unwrap()
    }

    /// False when `KILN_NO_BIND_CACHE` asks for a fresh bind group per dispatch.
    pub(crate) fn caches_bind_groups(&self) -> bool {
        self.inner.cache_bind_groups
    }

    /// Bind groups held for reuse across steps. Each keeps its buffers alive until it has
    /// gone unused for a few submits or [`Device::release_bind_groups`] is called.
    pub fn cached_bind_groups(&self) -> usize {
        self.bind_groups().len()
    }

    /// Drop every cached bind group now (and with them the last references to buffers
    /// that are otherwise gone, such as a dropped model's weights).
    pub fn release_bind_groups(&self) {
        self.bind_groups().clear();
    }
}

/// True when the environment variable `name` is set to something other than "", "0" or "false".
fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

/// One line per fact about an adapter, as `kiln devices` prints them.
pub fn describe_adapter(adapter: &wgpu::Adapter) -> AdapterReport {
    let info = adapter.get_info();
    let l = adapter.limits();
    let f = adapter.features();
    let mut features = Vec::new();
    for (flag, name) in [
        (wgpu::Features::SHADER_F16, "SHADER_F16"),
        (wgpu::Features::SUBGROUP, "SUBGROUP"),
        (wgpu::Features::TIMESTAMP_QUERY, "TIMESTAMP_QUERY"),
        (wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES, "TIMESTAMP_QUERY_INSIDE_PASSES"),
        (wgpu::Features::SHADER_INT64, "SHADER_INT64"),
        (wgpu::Features::IMMEDIATES, "IMMEDIATES"),
    ] {
        if f.contains(flag) {
            features.push(name.to_string());
        }
    }
    AdapterReport {
        name: info.name.clone(),
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        driver: info.driver.clone(),
        driver_info: info.driver_info.clone(),
        max_buffer_size: l.max_buffer_size,
        max_storage_buffer_binding_size: l.max_storage_buffer_binding_size,
        max_compute_workgroup_storage_size: l.max_compute_workgroup_storage_size,
        max_compute_invocations_per_workgroup: l.max_compute_invocations_per_workgroup,
        max_compute_workgroups_per_dimension: l.max_compute_workgroups_per_dimension,
        max_storage_buffers_per_shader_stage: l.max_storage_buffers_per_shader_stage,
        features,
    }
}

/// What `kiln devices` prints about one adapter: [`wgpu::AdapterInfo`], the limits kiln
/// depends on, and which of the features it cares about are present.
#[derive(Clone, Debug)]
pub struct AdapterReport {
    /// Adapter name as the driver reports it.
    pub name: String,
    /// Backend, as wgpu's `Debug` prints it (`Vulkan`, `Gl`, ...).
    pub backend: String,
    /// Device type, as wgpu's `Debug` prints it (`DiscreteGpu`, `Cpu`, ...).
    pub device_type: String,
    /// Driver name.
    pub driver: String,
    /// Driver version / description string.
    pub driver_info: String,
    /// Largest buffer the adapter can create, in bytes.
    pub max_buffer_size: u64,
    /// Largest storage-buffer binding, in bytes.
    pub max_storage_buffer_binding_size: u64,
    /// Workgroup (shared) memory per workgroup, in bytes.
    pub max_compute_workgroup_storage_size: u32,
    /// Most invocations in one workgroup.
    pub max_compute_invocations_per_workgroup: u32,
    /// Most workgroups in one dispatch dimension.
    pub max_compute_workgroups_per_dimension: u32,
    /// Most storage buffers one shader stage can bind.
    pub max_storage_buffers_per_shader_stage: u32,
    /// Names of the present features among SHADER_F16, SUBGROUP, TIMESTAMP_QUERY,
    /// TIMESTAMP_QUERY_INSIDE_PASSES, SHADER_INT64 and IMMEDIATES.
    pub features: Vec<String>,
}
