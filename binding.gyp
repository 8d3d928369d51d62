{
  "targets": [
    {
      "target_name": "tracedump",
      "sources": [
        "native/addon.cc",
        "native/tracer.cc",
        "native/seccomp.cc",
        "native/sockets.cc",
        "native/bpf.cc",
        "native/capture.cc",
        "native/event_json.cc",
        "native/capture_rules.cc",
        "native/sock_diag.cc",
        "native/users.cc",
        "native/file_guard.cc",
        "native/pcap_filter.cc",
        "native/fast_path.cc"
      ],
      "libraries": ["-ldl"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "_GNU_SOURCE"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
      "conditions": [
        ["OS!='linux' or target_arch!='x64'", {
          "sources!": ["native/tracer.cc", "native/event_json.cc", "native/seccomp.cc", "native/sockets.cc", "native/bpf.cc", "native/capture.cc", "native/capture_rules.cc", "native/sock_diag.cc", "native/users.cc", "native/file_guard.cc", "native/pcap_filter.cc", "native/fast_path.cc"],
          "defines": ["TRACEDUMP_UNSUPPORTED_PLATFORM"]
        }]
      ]
    }
  ]
}
