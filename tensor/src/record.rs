//! `Recorder`: records many kernel dispatches into ONE command encoder and submits
//! them together. Kernel launchers in the `kernels` crate call `Recorder::dispatch`;
//! model code only sees launchers and tensors.
//!
//! Each dispatch binds `inputs`, then `outputs`, then (if non-empty) its params as a
//! uniform, at bindings 0, 1, 2, ... in that order. Params of all dispatches share
//! 64 KiB uniform arenas reused across submits, so recording allocates no buffers.
//! Optionally the recorder keeps a trace (kernel, shapes, bytes, FLOPs) for
//! `kiln generate --trace`, and GPU timestamps per dispatch for `kiln bench`.

use crate::bind_cache::{key_hash as bind_key_hash, Binding};
use crate::counters::Counters;
use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Result, TensorError};
use crate::tensor::Tensor;

pub(crate) const PARAMS_ARENA_BYTES: u64 = 64 * 1024;
/// Bindings of one dispatch at most (tensors plus the params uniform).
const MAX_BINDINGS: usize = 16;

/// One kernel launch, as a launcher describes it.
pub struct Dispatch<'a> {
    /// `family::entry`, e.g. `matmul::matmul`; shown in traces and benches.
    pub kernel: &'static str,
    /// The compiled pipeline to run (from [`crate::Device::pipeline`]).
    pub pipeline: &'a wgpu::ComputePipeline,
    /// Tensors bound first, at bindings 0.., in this order.
    pub inputs: &'a [&'a Tensor],
    /// Tensors bound after the inputs, in this order.
    pub outputs: &'a [&'a Tensor],
    /// Bytes of the kernel's `params` uniform (a `#[repr(C)]` Pod struct); may be empty.
    pub params: &'a [u8],
    /// Workgroup counts in x, y, z; a zero anywhere records nothing.
    pub workgroups: [u32; 3],
    /// Floating-point operations (a multiply-add counts 2).
    pub flops: u64,
    /// Bytes the kernel must read and write at minimum.
    pub bytes: u64,
}

/// What a trace keeps of one dispatch.
#[derive(Clone, Debug)]
pub struct TraceEntry {
    /// The dispatch's `family::entry` name.
    pub kernel: &'static str,
    /// Shape and dtype of each input tensor.
    pub inputs: Vec<(Vec<usize>, DType)>,
    /// Shape and dtype of each output tensor.
    pub outputs: Vec<(Vec<usize>, DType)>,
    /// Workgroup counts in x, y, z.
    pub workgroups: [u32; 3],
    /// Floating-point operations, as the launcher counted them.
    pub flops: u64,
    /// Minimum bytes read and written, as the launcher counted them.
    pub bytes: u64,
}

/// What `submit` returns.
#[derive(Clone, Debug, Default)]
pub struct Submitted {
    /// One entry per dispatch when the recorder was made [`Recorder::with_trace`]; else empty.
    pub trace: Vec<TraceEntry>,
    /// GPU time of each dispatch in nanoseconds, when timing was requested and supported.
    pub gpu_ns: Option<Vec<f64>>,
}

struct Timing {
    query_set: wgpu::QuerySet,
    capacity: u32,
    used: u32,
}

/// Records kernel dispatches, clears and copies into one command encoder and submits them
/// together with [`Recorder::submit`].
pub struct Recorder {
    device: Device,
    encoder: wgpu::CommandEncoder,
    pass: Option<wgpu::ComputePass<'static>>,
    arenas: Vec<(wgpu::Buffer, Vec<u8>)>,
    trace: Option<Vec<TraceEntry>>,
    timing: Option<Timing>,
    started: std::time::Instant,
    dispatches: u64,
}

fn align_up(x: u64, a: u64) -> u64 {
    x.div_ceil(a) * a
}

impl Recorder {
    /// An empty recording on `device`, without trace or timing.
    pub fn new(device: &Device) -> Recorder {
        let encoder = device.wgpu().create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("kiln") });
        Recorder {
            device: device.clone(),
            encoder,
            pass: None,
            arenas: Vec::new(),
            trace: None,
            timing: None,
            started: std::time::Instant::now(),
            dispatches: 0,
        }
    }

    /// Keep a trace of every dispatch (returned by `submit`).
    pub fn with_trace(mut self) -> Recorder {
        self.trace = Some(Vec::new());
        self
    }

    /// Time up to `max_dispatches` dispatches with GPU timestamps when the adapter
    /// supports them (otherwise `Submitted::gpu_ns` is `None`).
    pub fn with_timing(mut self, max_dispatches: u32) -> Recorder {
        if self.device.has_timestamps() && max_dispatches > 0 {
            let query_set = self.device.wgpu().create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("kiln timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: max_dispatches * 2,
            });
            self.timing = Some(Timing { query_set, capacity: max_dispatches, used: 0 });
        }
        self
    }

    /// The device this recorder records for.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Dispatches recorded so far by this recorder.
    pub fn dispatch_count(&self) -> u64 {
        self.dispatches
    }

    /// Count `dispatches` recorded for `layers` transformer layers in the device's
    /// counters (`CounterSnapshot::dispatches_per_layer`); models call it around their
    /// layer loop.
    pub fn count_layers(&self, layers: usize, dispatches: u64) {
        Counters::add(&self.device.count().layers, layers as u64);
        Counters::add(&self.device.count().layer_dispatches, dispatches);
    }

    /// Copy params into the current arena and return (buffer index, offset).
    fn stage_params(&mut self, params: &[u8]) -> (usize, u64) {
        let align = self.device.limits().min_uniform_buffer_offset_alignment as u64;
        let need = align_up(params.len() as u64, 16);
        let fits = self
            .arenas
            .last()
            .map(|(_, host)| align_up(host.len() as u64, align) + need <= PARAMS_ARENA_BYTES)
            .unwrap_or(false);
        if !fits {
            self.arenas.push((self.device.take_params_arena(), Vec::new()));
        }
        let idx = self.arenas.len() - 1;
        let host = &mut self.arenas[idx].1;
        let offset = align_up(host.len() as u64, align);
        host.resize(offset as usize, 0);
        host.extend_from_slice(params);
        host.resize((offset + need) as usize, 0);
        (idx, offset)
    }

    /// Record one kernel launch.
    pub fn dispatch(&mut self, d: Dispatch<'_>) -> Result<()> {
        let max_wg = self.device.limits().max_compute_workgroups_per_dimension;
        if d.workgroups.iter().any(|&w| w > max_wg) {
            return Err(TensorError::TooLarge {
                what: format!("dispatch of {} with workgroups {:?}", d.kernel, d.workgroups),
                bytes: *d.workgroups.iter().max().unwrap() as u64,
                limit: max_wg as u64,
                limit_name: "max_compute_workgroups_per_dimension",
            });
        }
        if d.workgroups.contains(&0) {
            return Ok(());
        }
        Counters::add(&self.device.count().dispatches, 1);
        self.dispatches += 1;
        let params_at = if d.params.is_empty() { None } else { Some(self.stage_params(d.params)) };
        // The bindings, on the stack: inputs, outputs, then the params uniform.
        let n_tensors = d.inputs.len() + d.outputs.len();
        if n_tensors + 1 > MAX_BINDINGS {
            return Err(TensorError::shape(d.kernel, format!("{n_tensors} tensors bound, at most {}", MAX_BINDINGS - 1)));
        }
        let mut slots: [Option<Binding<'_>>; MAX_BINDINGS] = [None; MAX_BINDINGS];
        for (slot, t) in slots.iter_mut().zip(d.inputs.iter().chain(d.outputs.iter())) {
            *slot = Some((t.buffer(), t.byte_offset(), t.binding_bytes()));
        }
        if let Some((arena, offset)) = params_at {
            slots[n_tensors] = Some((&self.arenas[arena].0, offset, align_up(d.params.len() as u64, 16)));
        }
        let bindings = &slots[..n_tensors + usize::from(params_at.is_some())];
        let hash = bind_key_hash(d.pipeline, bindings);
        let cache = self.device.caches_bind_groups();
        let cached = if cache { self.device.bind_groups().get(hash, d.pipeline, bindings) } else { None };
        let bind_group = match cached {
            Some(bg) => bg,
            None => {
                let entries: Vec<wgpu::BindGroupEntry> = bindings
                    .iter()
                    .enumerate()
                    .map(|(i, b)| (i, b.expect("every slot below the count is filled")))
                    .map(|(i, (buffer, offset, size))| wgpu::BindGroupEntry {
                        binding: i as u32,
                        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                            buffer,
                            offset,
                            size: wgpu::BufferSize::new(size),
                        }),
                    })
                    .collect();
                let layout = d.pipeline.get_bind_group_layout(0);
                Counters::add(&self.device.count().bind_groups, 1);
                let bg = self.device.wgpu().create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some(d.kernel),
                    layout: &layout,
                    entries: &entries,
                });
                if cache {
                    self.device.bind_groups().insert(hash, d.pipeline, bindings, bg.clone());
                }
                bg
            }
        };

        let timestamp_index = match &mut self.timing {
            Some(t) if t.used < t.capacity => {
                t.used += 1;
                Some(t.used - 1)
            }
            _ => None,
        };
        if let Some(i) = timestamp_index {
            // A timed dispatch gets a pass of its own so its begin/end stamps bracket it alone.
            self.pass = None;
            let qs = &self.timing.as_ref().unwrap().query_set;
            let mut pass = self.encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(d.kernel),
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: qs,
                    beginning_of_pass_write_index: Some(2 * i),
                    end_of_pass_write_index: Some(2 * i + 1),
                }),
            });
            pass.set_pipeline(d.pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(d.workgroups[0], d.workgroups[1], d.workgroups[2]);
        } else {
            if self.pass.is_none() {
                let pass = self
                    .encoder
                    .begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("kiln"), timestamp_writes: None })
                    .forget_lifetime();
                self.pass = Some(pass);
            }
            let pass = self.pass.as_mut().unwrap();
            pass.set_pipeline(d.pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(d.workgroups[0], d.workgroups[1], d.workgroups[2]);
        }

        if let Some(trace) = &mut self.trace {
            trace.push(TraceEntry {
                kernel: d.kernel,
                inputs: d.inputs.iter().map(|t| (t.shape().to_vec(), t.dtype())).collect(),
                outputs: d.outputs.iter().map(|t| (t.shape().to_vec(), t.dtype())).collect(),
                workgroups: d.workgroups,
                flops: d.flops,
                bytes: d.bytes,
            });
        }
        Ok(())
    }

    /// Zero `t`, in stream order with the recorded dispatches. (Inside a recording use this,
    /// not `Tensor::zeros`, which submits at once: a pooled buffer may still be read by
    /// dispatches recorded earlier and not yet submitted.)
    pub fn clear(&mut self, t: &Tensor) {
        self.pass = None;
        self.encoder.clear_buffer(t.buffer(), t.byte_offset(), Some(t.byte_len().div_ceil(4) * 4));
    }

    /// Copy all of `src` into `dst` starting at element `dst_elem_offset` of `dst`.
    pub fn copy_into(&mut self, src: &Tensor, dst: &Tensor, dst_elem_offset: usize) -> Result<()> {
        self.copy_region(src, 0, dst, dst_elem_offset, src.numel())
    }

    /// Copy `count` elements from element `src_elem_offset` of `src` to element
    /// `dst_elem_offset` of `dst` (same dtype; offsets and size in whole 4-byte words).
    pub fn copy_region(
        &mut self,
        src: &Tensor,
        src_elem_offset: usize,
        dst: &Tensor,
        dst_elem_offset: usize,
        count: usize,
    ) -> Result<()> {
        let op = "copy";
        if src.dtype() != dst.dtype() {
            return Err(TensorError::dtype(op, format!("{} into {}", src.dtype(), dst.dtype())));
        }
        for (name, t, off) in [("source", src, src_elem_offset), ("destination", dst, dst_elem_offset)] {
            if off.checked_add(count).is_none_or(|end| end > t.numel()) {
                return Err(TensorError::shape(
                    op,
                    format!("{count} elements at offset {off} overflow the {name} of shape {:?}", t.shape()),
                ));
            }
        }
        let dt = src.dtype();
        let (src_off, dst_off, bytes) =
            (dt.storage_bytes(src_elem_offset), dt.storage_bytes(dst_elem_offset), dt.storage_bytes(count));
        if src_off % 4 != 0 || dst_off % 4 != 0 || bytes % 4 != 0 {
            return Err(TensorError::shape(op, "copies must start and end on whole 4-byte words"));
        }
        if src.same_storage(dst) {
            return Err(TensorError::shape(op, "source and destination must be different buffers"));
        }
        self.pass = None;
        self.encoder.copy_buffer_to_buffer(
            src.buffer(),
            src.byte_offset() + src_off,
            dst.buffer(),
            dst.byte_offset() + dst_off,
            bytes,
        );
        Ok(())
    }

    /// Submit everything recorded, wait for it, and return the trace / timings.
    pub fn submit(mut self) -> Result<Submitted> {
        Counters::add(&self.device.count().record_ns, self.started.elapsed().as_nanos() as u64);
        self.pass = None;
        for (buffer, host) in &self.arenas {
            if !host.is_empty() {
                self.device.queue().write_buffer(buffer, 0, host);
            }
        }
        let mut resolve = None;
        if let Some(t) = &self.timing {
            if t.used > 0 {
                let bytes = t.used as u64 * 2 * 8;
                Counters::add(&self.device.count().unpooled_buffers, 2);
                let resolved = self.device.wgpu().create_buffer(&wgpu::BufferDescriptor {
                    label: Some("kiln timestamps resolve"),
                    size: bytes,
                    usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                });
                let readback = self.device.wgpu().create_buffer(&wgpu::BufferDescriptor {
                    label: Some("kiln timestamps readback"),
                    size: bytes,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                self.encoder.resolve_query_set(&t.query_set, 0..t.used * 2, &resolved, 0);
                self.encoder.copy_buffer_to_buffer(&resolved, 0, &readback, 0, bytes);
                resolve = Some(readback);
            }
        }
        let Recorder { device, encoder, arenas, trace, .. } = self;
        Counters::add(&device.count().submits, 1);
        device.bind_groups().on_submit();
        device.queue().submit([encoder.finish()]);
        for (buffer, _) in arenas {
            device.return_params_arena(buffer);
        }
        let gpu_ns = match resolve {
            Some(readback) => {
                readback.slice(..).map_async(wgpu::MapMode::Read, |_| {});
                device.sync()?;
                let view = readback
                    .slice(..)
                    .get_mapped_range()
                    .map_err(|e| TensorError::Gpu { context: "timestamps".into(), detail: e.to_string() })?;
                let stamps: Vec<u64> = bytemuck::pod_collect_to_vec(&view);
                drop(view);
                let period = device.queue().get_timestamp_period() as f64;
                Some(stamps.chunks_exact(2).map(|c| c[1].saturating_sub(c[0]) as f64 * period).collect())
            }
            None => {
                device.sync()?;
                None
            }
        };
        Ok(Submitted { trace: trace.unwrap_or_default(), gpu_ns })
    }
}

/// A host-readable staging buffer kept across steps: [`Recorder::copy_to_readback`]
/// records a copy of a small tensor into it in the same submission as the work that
/// produced it, and [`Readback::read`] maps it after the submit — no new buffer and no
/// extra submit per step.
pub struct Readback {
    device: Device,
    buffer: wgpu::Buffer,
    bytes: u64,
}

impl Readback {
    /// Room for `bytes` bytes (rounded up to whole 4-byte words).
    pub fn new(device: &Device, bytes: u64) -> Readback {
        let bytes = bytes.max(4).div_ceil(4) * 4;
        Counters::add(&device.count().unpooled_buffers, 1);
        let buffer = device.wgpu().create_buffer(&wgpu::BufferDescriptor {
            label: Some("kiln readback (persistent)"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Readback { device: device.clone(), buffer, bytes }
    }

    /// The first `len` bytes, after the submit that filled them.
    pub fn read(&self, len: u64) -> Result<Vec<u8>> {
        let len = len.min(self.bytes);
        Counters::add(&self.device.count().readback_bytes, len);
        let slice = self.buffer.slice(..len.div_ceil(4) * 4);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.device.sync()?;
        let gpu_err = |e: String| TensorError::Gpu { context: "readback".into(), detail: e };
        rx.recv().map_err(|e| gpu_err(e.to_string()))?.map_err(|e| gpu_err(e.to_string()))?;
        let view = slice.get_mapped_range().map_err(|e| gpu_err(e.to_string()))?;
        let out = view[..len as usize].to_vec();
        drop(view);
        self.buffer.unmap();
        Ok(out)
    }
}

impl Recorder {
    /// Copy all of `src` (whole 4-byte words) to byte `offset` of `dst`, in stream order.
    pub fn copy_to_readback(&mut self, src: &Tensor, dst: &Readback, offset: u64) -> Result<()> {
        let bytes = src.byte_len();
        if !bytes.is_multiple_of(4) || !offset.is_multiple_of(4) || offset + bytes > dst.bytes {
            return Err(TensorError::shape(
                "copy_to_readback",
                format!(
                    "{bytes} bytes at offset {offset} do not fit the {}-byte readback buffer in whole words",
                    dst.bytes
                ),
            ));
        }
        self.pass = None;
        self.encoder.copy_buffer_to_buffer(src.buffer(), src.byte_offset(), &dst.buffer, offset, bytes);
        Ok(())
    }
}
