#include "server/image_transform.h"

#include <algorithm>
#include <cmath>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "absl/strings/str_cat.h"

namespace m3serve::server {
namespace {

// The scale the resize applies to the source (before canvas / crop).
void ScaledSize(uint32_t w, uint32_t h, const ImageTarget& t, double* sx, double* sy) {
  if (t.width == 0 && t.height == 0) {
    *sx = *sy = 1.0;
  } else if (t.width == 0) {
    *sx = *sy = double(t.height) / h;
  } else if (t.height == 0) {
    *sx = *sy = double(t.width) / w;
  } else if (t.mode == ResizeMode::kStretch) {
    *sx = double(t.width) / w;
    *sy = double(t.height) / h;
  } else if (t.mode == ResizeMode::kFill) {
    *sx = *sy = std::max(double(t.width) / w, double(t.height) / h);
  } else {
    *sx = *sy = std::min(double(t.width) / w, double(t.height) / h);
  }
}

uint32_t Round(double v) { return static_cast<uint32_t>(std::max(1.0, std::round(v))); }

}  // namespace

void OutputSize(uint32_t w, uint32_t h, const ImageTarget& t, uint32_t* ow, uint32_t* oh) {
  if (t.width && t.height) {
    *ow = t.width;
    *oh = t.height;
    return;
  }
  double sx, sy;
  ScaledSize(w, h, t, &sx, &sy);
  *ow = Round(w * sx);
  *oh = Round(h * sy);
}

int ReducedDecodeFactor(uint32_t w, uint32_t h, const ImageTarget& t) {
  if (t.width == 0 && t.height == 0) return 1;
  double sx, sy;
  ScaledSize(w, h, t, &sx, &sy);
  const double needed_w = w * sx, needed_h = h * sy;
  for (int f : {8, 4, 2}) {
    // libjpeg rounds reduced dimensions up.
    double rw = std::ceil(double(w) / f), rh = std::ceil(double(h) / f);
    if (rw >= needed_w && rh >= needed_h) return f;
  }
  return 1;
}

absl::Status DecodeToRgb(absl::string_view bytes, const storage::ImageMeta& meta,
                         const ImageTarget& target, std::string* rgb, uint32_t* width,
                         uint32_t* height) {
  cv::Mat raw(1, static_cast<int>(bytes.size()), CV_8UC1, const_cast<char*>(bytes.data()));
  int flags = cv::IMREAD_COLOR;
  if (meta.format == ImageFormat::kJpeg && meta.width && meta.height) {
    switch (ReducedDecodeFactor(meta.width, meta.height, target)) {
      case 8: flags = cv::IMREAD_REDUCED_COLOR_8; break;
      case 4: flags = cv::IMREAD_REDUCED_COLOR_4; break;
      case 2: flags = cv::IMREAD_REDUCED_COLOR_2; break;
      default: break;
    }
  }
  cv::Mat bgr = cv::imdecode(raw, flags);
  if (bgr.empty()) {
    return absl::DataLossError(absl::StrCat("stored ", ImageFormatName(meta.format),
                                            " image does not decode"));
  }
  uint32_t ow, oh;
  OutputSize(static_cast<uint32_t>(bgr.cols), static_cast<uint32_t>(bgr.rows), target, &ow, &oh);
  if (target.width && target.height) {
    // Sizes are computed from the original dimensions so that a reduced
    // decode yields the same geometry as a full one.
    const uint32_t src_w = meta.width ? meta.width : bgr.cols, src_h = meta.height ? meta.height : bgr.rows;
    double sx, sy;
    ScaledSize(src_w, src_h, target, &sx, &sy);
    uint32_t sw = Round(src_w * sx), sh = Round(src_h * sy);
    cv::Mat scaled;
    if (int(sw) != bgr.cols || int(sh) != bgr.rows) {
      int interp = (int(sw) < bgr.cols) ? cv::INTER_AREA : cv::INTER_LINEAR;
      cv::resize(bgr, scaled, cv::Size(int(sw), int(sh)), 0, 0, interp);
    } else {
      scaled = bgr;
    }
    rgb->assign(size_t{ow} * oh * 3, '\0');
    cv::Mat out(int(oh), int(ow), CV_8UC3, rgb->data());
    if (target.mode == ResizeMode::kStretch) {
      cv::cvtColor(scaled, out, cv::COLOR_BGR2RGB);
    } else if (target.mode == ResizeMode::kFill) {
      // Centre-crop the covering image to the canvas.
      const int cw = std::min<int>(int(ow), scaled.cols), ch = std::min<int>(int(oh), scaled.rows);
      cv::Mat src = scaled(cv::Rect((scaled.cols - cw) / 2, (scaled.rows - ch) / 2, cw, ch));
      cv::Mat dst = out(cv::Rect((int(ow) - cw) / 2, (int(oh) - ch) / 2, cw, ch));
      cv::cvtColor(src, dst, cv::COLOR_BGR2RGB);
    } else {  // fit: letterbox on black
      int x = (int(ow) - scaled.cols) / 2, y = (int(oh) - scaled.rows) / 2;
      cv::Mat roi = out(cv::Rect(x, y, scaled.cols, scaled.rows));
      cv::cvtColor(scaled, roi, cv::COLOR_BGR2RGB);
    }
  } else {
    cv::Mat scaled;
    if (int(ow) != bgr.cols || int(oh) != bgr.rows) {
      int interp = (int(ow) < bgr.cols) ? cv::INTER_AREA : cv::INTER_LINEAR;
      cv::resize(bgr, scaled, cv::Size(int(ow), int(oh)), 0, 0, interp);
    } else {
      scaled = bgr;
    }
    rgb->assign(size_t{ow} * oh * 3, '\0');
    cv::Mat out(int(oh), int(ow), CV_8UC3, rgb->data());
    cv::cvtColor(scaled, out, cv::COLOR_BGR2RGB);
  }
  *width = ow;
  *height = oh;
  return absl::OkStatus();
}

}  // namespace m3serve::server
