{
  "targets": [
    {
      "target_name": "tun",
      "sources": ["native/tun/tun.cc", "native/tun/socket-table.cc", "native/tun/upstream.cc", "native/tun/caps.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
