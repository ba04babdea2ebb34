{
  "targets": [
    {
      "target_name": "original_dst",
      "conditions": [
        ["OS=='linux'", {
          "sources": ["src/native/original_dst.c"],
          "cflags": ["-Wall", "-Wextra", "-O2"],
          "defines": ["NAPI_VERSION=8"]
        }]
      ]
    }
  ]
}
