{
  "targets": [
    {
      "target_name": "veil_native",
      "sources": [
        "native/src/addon.cc",
        "native/src/netlink.cc",
        "native/src/js.cc",
        "native/src/link.cc",
        "native/src/addr.cc",
        "native/src/route.cc",
        "native/src/rule.cc",
        "native/src/wireguard.cc",
        "native/src/xfrm.cc",
        "native/src/bpf.cc",
        "native/src/bpf-attach.cc",
        "native/src/bpf-ringbuf.cc",
        "native/src/netns.cc"
      ],
      "libraries": ["-lbpf", "-lelf", "-lz"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++20", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"]
    },
    {
      "target_name": "veil-netns-exec",
      "type": "executable",
      "sources": ["native/tools/veil-netns-exec.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra"]
    }
  ]
}
