//! GPU checks. They need an NVIDIA GPU with its driver (NVML) and a CUDA-enabled
//! libonnxruntime (`ORT_DYLIB_PATH`, e.g. from the `onnxruntime-gpu` wheel); without one they
//! print a loud SKIPPED and return. Run on a GPU machine:
//!   ORT_DYLIB_PATH=/path/libonnxruntime.so cargo nextest run -p barnabee-inference -E 'test(/gpu::/)' --no-capture

use barnabee_inference::config::GpuConfig;
use barnabee_inference::gpu;

fn gpu_or_skip(test: &str) -> Option<nvml_wrapper::Nvml> {
    match gpu::open(&GpuConfig::default()) {
        Ok(n) => Some(n),
        Err(e) => {
            eprintln!("\n******** SKIPPED (no NVIDIA GPU: {e}): {test} ********\n");
            None
        }
    }
}

#[test]
fn gpu_nvml_figures_match_nvidia_smi() {
    let Some(_nvml) = gpu_or_skip("gpu_nvml_figures_match_nvidia_smi") else {
        return;
    };
    let state = gpu::GpuState::default();
    let health = barnabee_service::Health::new();
    let check = health.component("gpu", barnabee_service::Check::ok("x").non_critical());
    gpu::start(
        &GpuConfig::default(),
        state.clone(),
        gpu::GpuMetrics::default(),
        check,
        barnabee_service::Shutdown::default(),
    );
    let s = state.latest().expect("a snapshot");
    let out = std::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=memory.total,temperature.gpu",
            "--format=csv,noheader,nounits",
        ])
        .output()
        .expect("nvidia-smi");
    let line = String::from_utf8_lossy(&out.stdout);
    let mut it = line
        .trim()
        .split(',')
        .map(|v| v.trim().parse::<u64>().unwrap());
    let (total, temp) = (it.next().unwrap(), it.next().unwrap());
    eprintln!("NVML: {s:?}\nnvidia-smi: total {total} MiB, {temp} °C");
    assert!(
        s.memory_total_mb.abs_diff(total) <= 2,
        "{} vs {total}",
        s.memory_total_mb
    );
    assert!(u64::from(s.temperature_c).abs_diff(temp) <= 3);
}

#[test]
fn gpu_cuda_provider_runs_silero_on_the_gpu() {
    if gpu_or_skip("gpu_cuda_provider_runs_silero_on_the_gpu").is_none() {
        return;
    }
    let cfg = barnabee_inference::config::RuntimeConfig {
        library: Some(crate::common::ort_lib()),
        provider: barnabee_inference::config::Provider::Cuda,
        ..Default::default()
    };
    let e = barnabee_inference::engine::Engine::init(&cfg).unwrap();
    let (_s, placement) = e.session(&crate::common::silero(), true).unwrap();
    if let barnabee_inference::engine::Placement::CpuFallback(reason) = &placement
        && reason.contains("not enabled in this build")
        && std::env::var_os("BARNABEE_REQUIRE_CUDA").is_none()
    {
        eprintln!(
            "\n******** SKIPPED (the libonnxruntime in use has no CUDA provider: {reason}; point ORT_DYLIB_PATH at the onnxruntime-gpu wheel's library, or set BARNABEE_REQUIRE_CUDA=1 to fail): gpu_cuda_provider_runs_silero_on_the_gpu ********\n"
        );
        return;
    }
    assert_eq!(
        placement,
        barnabee_inference::engine::Placement::Cuda,
        "CUDA provider present but unusable"
    );
}

#[tokio::test]
async fn gpu_admission_sheds_under_real_vram_pressure() {
    let Some(_nvml) = gpu_or_skip("gpu_admission_sheds_under_real_vram_pressure") else {
        return;
    };
    let state = gpu::GpuState::default();
    let health = barnabee_service::Health::new();
    let check = health.component("gpu", barnabee_service::Check::ok("x").non_critical());
    gpu::start(
        &GpuConfig::default(),
        state.clone(),
        gpu::GpuMetrics::default(),
        check,
        barnabee_service::Shutdown::default(),
    );
    let s = state.latest().unwrap();
    let a = gpu::Admission {
        state,
        max_temperature_c: 200,
        queue_wait: std::time::Duration::from_millis(200),
    };
    assert!(a.admit(s.memory_free_mb / 2).await.is_ok());
    let e = a.admit(s.memory_free_mb + 1024).await.unwrap_err();
    assert!(e.contains("MiB free"), "{e}");
}
