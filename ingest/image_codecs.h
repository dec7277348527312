// File: ingest/image_codecs.h
//
// OpenCV's image codecs (imgcodecs) for the admin tool, loaded on first use.
// libopencv_imgcodecs pulls in some 140 shared libraries (GDAL, DICOM, HEIF,
// …) whose loading took 0.15–0.25 s of every m3serve-admin start, an ingest's
// included, though an ingest decodes an image only for `--image-check decode`
// or an image whose header gives no size, and only `sample` encodes. The
// codecs live in a plugin, m3serve-image-codecs.so, next to the binaries'
// libraries (<bin>/../lib/m3serve/, or $M3SERVE_PLUGIN_DIR), opened with
// dlopen the first time one of these is called. The server links imgcodecs
// itself (it decodes every request) and does not use this.
#ifndef M3SERVE_INGEST_IMAGE_CODECS_H_
#define M3SERVE_INGEST_IMAGE_CODECS_H_

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <opencv2/core.hpp>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace m3serve::ingest {

// cv::imdecode(bytes, flags): its (width, height), or nullopt when the bytes do
// not decode. FailedPrecondition naming the places looked in when the plugin
// cannot be loaded.
absl::StatusOr<std::optional<std::pair<int, int>>> DecodeImageSize(absl::string_view bytes, int flags);

// cv::imencode(ext, image, params). InvalidArgument when OpenCV cannot encode it.
absl::StatusOr<std::vector<unsigned char>> EncodeImage(const std::string& ext, const cv::Mat& image,
                                                       const std::vector<int>& params);

// Load the plugin now (a run that will need it fails at its start, not on
// its first image). The path it was loaded from.
absl::StatusOr<std::string> LoadImageCodecs();

}  // namespace m3serve::ingest

#endif  // M3SERVE_INGEST_IMAGE_CODECS_H_
