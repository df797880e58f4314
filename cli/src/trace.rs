//! `--trace`: every kernel of one decode step, in dispatch order, on stderr.

use kiln_tensor::TraceEntry;

fn shapes(v: &[(Vec<usize>, kiln_tensor::DType)]) -> String {
    v.iter().map(|(s, d)| format!("{s:?}{d}")).collect::<Vec<_>>().join(" ")
}

pub fn print_trace(trace: &[TraceEntry]) {
    eprintln!("trace of one decode step: {} dispatches", trace.len());
    eprintln!("{:>4}  {:<28} {:<60} {:<16} {:>12} {:>12}", "#", "kernel", "inputs", "output", "bytes", "FLOPs");
    let (mut bytes, mut flops) = (0u64, 0u64);
    for (i, t) in trace.iter().enumerate() {
        eprintln!(
            "{:>4}  {:<28} {:<60} {:<16} {:>12} {:>12}",
            i,
            t.kernel,
            shapes(&t.inputs),
            shapes(&t.outputs),
            t.bytes,
            t.flops
        );
        bytes += t.bytes;
        flops += t.flops;
    }
    eprintln!("total: {bytes} bytes moved, {flops} FLOPs");
}
