//! `kiln devices`: what wgpu can see, with the limits that matter to kernels.

use anyhow::{bail, Result};
use kiln_tensor::{describe_adapter, list_adapters};

use crate::DeviceArgs;

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
}

pub fn run(args: &DeviceArgs) -> Result<()> {
    let backend = args.backend()?;
    let adapters = list_adapters(backend);
    if adapters.is_empty() {
        bail!(
            "no GPU adapter found for backend {backend}. Install a GPU driver; on a machine without a GPU \
             install the software Vulkan driver (Debian/Ubuntu: `sudo apt-get install mesa-vulkan-drivers libvulkan1`)."
        );
    }
    for (i, adapter) in adapters.iter().enumerate() {
        let r = describe_adapter(adapter);
        println!("[{i}] {}", r.name);
        println!("    backend      {}", r.backend);
        println!("    device type  {}", r.device_type);
        println!("    driver       {} {}", r.driver, r.driver_info);
        println!("    max buffer size                  {}", mib(r.max_buffer_size));
        println!("    max storage buffer binding size  {}", mib(r.max_storage_buffer_binding_size));
        println!("    max workgroup storage            {} KiB", r.max_compute_workgroup_storage_size / 1024);
        println!("    max invocations per workgroup    {}", r.max_compute_invocations_per_workgroup);
        println!("    max workgroups per dimension     {}", r.max_compute_workgroups_per_dimension);
        println!("    max storage buffers per stage    {}", r.max_storage_buffers_per_shader_stage);
        println!("    features     {}", if r.features.is_empty() { "-".to_string() } else { r.features.join(", ") });
    }
    Ok(())
}
