// File: ingest/test_util.h (test only)
//
// Helpers shared by the ingest unit tests: temporary directories, files and
// small real images.
#ifndef M3SERVE_INGEST_TEST_UTIL_H_
#define M3SERVE_INGEST_TEST_UTIL_H_

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ctime>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "common/base64.h"
#include "gtest/gtest.h"

namespace m3serve::ingest::testing {

// A fresh directory removed at destruction.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = std::filesystem::temp_directory_path() /
            ("m3serve_" + std::string(info->test_suite_name()) + "_" + info->name() + "_" +
             std::to_string(::getpid()));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::filesystem::path& path() const { return path_; }
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

inline void WriteFile(const std::filesystem::path& p, const std::string& content) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << content;
}

// Set a file's modification (and access) time `seconds_ago` into the past, so a
// later quick check does not find it "racily clean".
inline void SetMtimeSecondsAgo(const std::filesystem::path& p, int seconds_ago) {
  struct timespec times[2];
  clock_gettime(CLOCK_REALTIME, &times[0]);
  times[0].tv_sec -= seconds_ago;
  times[1] = times[0];
  ASSERT_EQ(::utimensat(AT_FDCWD, p.c_str(), times, 0), 0) << p;
}

// Encoded bytes of a small image whose pixels depend on `seed`.
inline std::string ImageBytes(int seed, const std::string& ext = ".jpg", int w = 24, int h = 16) {
  cv::Mat m(h, w, CV_8UC3, cv::Scalar(seed * 37 % 256, seed * 91 % 256, seed * 13 % 256));
  cv::circle(m, cv::Point(w / 2, h / 2), h / 3, cv::Scalar(255, 255 - seed % 200, 0), -1);
  std::vector<uchar> buf;
  cv::imencode(ext, m, buf);
  return std::string(buf.begin(), buf.end());
}

inline std::string ImageB64(int seed, const std::string& ext = ".jpg") {
  return Base64Encode(ImageBytes(seed, ext));
}

}  // namespace m3serve::ingest::testing

#endif  // M3SERVE_INGEST_TEST_UTIL_H_
