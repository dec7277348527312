// m3serve-parse-limit: the CPU limit of ingest, a peer in bench/run. Every
// line of the files parsed with simdjson and every image string
// base64-decoded, on N threads, nothing checked, hashed or written. Each file
// is mapped once; thread t takes lines t, t+N, ... Prints one JSON object.
//
//   m3serve-parse-limit --threads N FILE...
//
// Its own small binary, linked like the ingest (no OpenCV codecs, no gRPC),
// because bench/run times it as a whole process, start-up included, as it
// times the ingest.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <simdjson.h>

#include "absl/strings/string_view.h"
#include "bench/bench_clock.h"
#include "common/base64.h"
#include "common/cli.h"
#include "common/json_writer.h"
#include "ingest/row_mapper.h"

namespace {

using namespace m3serve;  // NOLINT
using bench::Clock;
using bench::CpuSeconds;
using bench::Seconds;

int Usage(const std::string& msg) {
  std::fprintf(stderr, "m3serve-parse-limit: %s\n", msg.c_str());
  return 2;
}

// The base64 strings under `key` ("a" or "a.b"): a string or a list of them.
void DecodeImagesAt(simdjson::dom::object row, absl::string_view key, std::string* scratch,
                    uint64_t* images, uint64_t* bytes) {
  simdjson::dom::element e;
  const size_t dot = key.find('.');
  if (dot != absl::string_view::npos) {
    simdjson::dom::object sub;
    if (row[std::string_view(key.data(), dot)].get_object().get(sub)) return;
    return DecodeImagesAt(sub, key.substr(dot + 1), scratch, images, bytes);
  }
  if (row[std::string_view(key.data(), key.size())].get(e)) return;
  auto one = [&](simdjson::dom::element v) {
    std::string_view s;
    if (v.get_string().get(s)) return;
    if (Base64Decode(absl::string_view(s.data(), s.size()), scratch).ok()) {
      ++*images;
      *bytes += scratch->size();
    }
  };
  simdjson::dom::array arr;
  if (!e.get_array().get(arr)) {
    for (simdjson::dom::element v : arr) one(v);
  } else {
    one(e);
  }
}

int Run(int argc, char** argv) {
  int64_t threads = 2;
  FlagSet f("m3serve-parse-limit --threads N FILE...", "parse + base64-decode every line, write nothing");
  f.Int("threads", &threads, "threads");
  std::vector<std::string> files;
  if (!f.Parse(argc, argv, 1, &files).ok() || files.empty() || threads < 1) {
    return Usage("parse-limit: bad flags");
  }
  std::atomic<uint64_t> lines{0}, images{0}, decoded{0}, raw{0};
  const auto t0 = Clock::now();
  const double cpu0 = CpuSeconds();
  for (const std::string& path : files) {
    int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0) return Usage("parse-limit: cannot open " + path);
    struct stat st;
    ::fstat(fd, &st);
    const size_t size = static_cast<size_t>(st.st_size);
    raw += size;
    if (size == 0) {
      ::close(fd);
      continue;
    }
    void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    if (map == MAP_FAILED) return Usage("parse-limit: cannot map " + path);
    const char* data = static_cast<const char*>(map);
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        simdjson::dom::parser parser;
        std::string scratch;
        uint64_t my_lines = 0, my_images = 0, my_bytes = 0, index = 0;
        for (size_t pos = 0; pos < size; ++index) {
          const char* nl = static_cast<const char*>(std::memchr(data + pos, '\n', size - pos));
          const size_t end = nl ? static_cast<size_t>(nl - data) : size;
          if (index % threads == static_cast<uint64_t>(t) && end > pos) {
            simdjson::dom::object row;
            if (!parser.parse(data + pos, end - pos).get_object().get(row)) {
              for (absl::string_view key : ingest::ImageKeys()) {
                const uint64_t before = my_images;
                DecodeImagesAt(row, key, &scratch, &my_images, &my_bytes);
                if (my_images != before) break;
              }
            }
            ++my_lines;
          }
          pos = end + 1;
        }
        lines += my_lines;
        images += my_images;
        decoded += my_bytes;
      });
    }
    for (auto& th : pool) th.join();
    ::munmap(map, size);
  }
  const double secs = Seconds(t0, Clock::now());
  JsonWriter w;
  w.BeginObject().Key("lines").Uint(lines).Key("images").Uint(images).Key("decoded_bytes").Uint(decoded)
      .Key("jsonl_bytes").Uint(raw).Key("seconds").Double(secs)
      .Key("mb_per_second").Double(raw / 1e6 / secs).Key("cpu_seconds").Double(CpuSeconds() - cpu0)
      .Key("threads").Int(threads).EndObject();
  std::cout << w.str() << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return Run(argc, argv); }
