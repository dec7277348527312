// File: server/test_files.h (test only)
//
// Write a small file under the temporary directory for a test.
#ifndef M3SERVE_SERVER_TEST_FILES_H_
#define M3SERVE_SERVER_TEST_FILES_H_

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace m3serve::server::testing {

// `<tmp>/<name><pid>.json` holding `text`; returns its path.
inline std::string WriteTempFile(const std::string& name, const std::string& text) {
  auto p = std::filesystem::temp_directory_path() / (name + std::to_string(getpid()) + ".json");
  std::ofstream(p) << text;
  return p.string();
}

}  // namespace m3serve::server::testing

#endif  // M3SERVE_SERVER_TEST_FILES_H_
