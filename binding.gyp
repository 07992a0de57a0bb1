{
  "targets": [
    {
      "target_name": "synfin",
      "sources": [
        "native/addon.cc",
        "native/device/tun.cc",
        "native/upstream/upstream.cc",
        "native/sockets/tcp-info.cc",
        "native/socket-table/socket-table.cc",
        "native/socket-owners/socket-owners.cc",
        "native/process/caps.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
