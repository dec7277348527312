// The m3serve-image-codecs plugin (see image_codecs.h): a C entry point per
// function, the only code that links libopencv_imgcodecs on the admin side.
#include <cstddef>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

extern "C" {

// 1 and the size when `data` decodes with `flags`, else 0. Never throws.
__attribute__((visibility("default"))) int m3serve_codecs_decode(const unsigned char* data, size_t size, int flags,
                                                                 int* width, int* height) {
  try {
    cv::Mat raw(1, static_cast<int>(size), CV_8UC1, const_cast<unsigned char*>(data));
    cv::Mat img = cv::imdecode(raw, flags);
    if (img.empty()) return 0;
    *width = img.cols;
    *height = img.rows;
    return 1;
  } catch (...) {
    return 0;
  }
}

// 1 when `image` encodes as `ext` into `out`, else 0. Never throws.
__attribute__((visibility("default"))) int m3serve_codecs_encode(const char* ext, const cv::Mat* image,
                                                                 const int* params, size_t nparams,
                                                                 std::vector<unsigned char>* out) {
  try {
    return cv::imencode(ext, *image, *out, std::vector<int>(params, params + nparams)) ? 1 : 0;
  } catch (...) {
    return 0;
  }
}

}  // extern "C"
