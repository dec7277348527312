# Find every dependency once, from Debian bookworm packages. Nothing is downloaded.
find_package(Threads REQUIRED)
find_package(absl CONFIG REQUIRED)
find_package(RocksDB CONFIG REQUIRED)
find_package(simdjson CONFIG REQUIRED)
find_package(Protobuf REQUIRED)
find_package(gRPC CONFIG REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(XXHASH REQUIRED IMPORTED_TARGET libxxhash)

# OpenCV: Debian's split -dev packages (core, imgproc, imgcodecs) ship no CMake
# config (that comes with the full libopencv-dev), so locate the three modules.
find_path(OPENCV_INCLUDE_DIR opencv2/core.hpp PATH_SUFFIXES opencv4 REQUIRED)
foreach(_mod core imgproc imgcodecs)
  find_library(OPENCV_${_mod}_LIBRARY NAMES opencv_${_mod} REQUIRED)
endforeach()
if(NOT TARGET m3serve::opencv)
  add_library(m3serve_opencv INTERFACE)
  add_library(m3serve::opencv ALIAS m3serve_opencv)
  target_include_directories(m3serve_opencv SYSTEM INTERFACE ${OPENCV_INCLUDE_DIR})
  target_link_libraries(m3serve_opencv INTERFACE
    ${OPENCV_imgcodecs_LIBRARY} ${OPENCV_imgproc_LIBRARY} ${OPENCV_core_LIBRARY})
endif()

if(M3SERVE_BUILD_TESTS)
  find_package(GTest CONFIG REQUIRED)
endif()

# m3serve_add_test(NAME SOURCES... LIBS ... [LABELS ...]): one GoogleTest
# binary, discovered at test time. Integration tests carry LABELS integration,
# so `ctest -LE integration` runs the unit tests alone (the image build does).
function(m3serve_add_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gmock GTest::gtest_main)
  set(labels unit)
  if(ARG_LABELS)
    set(labels ${ARG_LABELS})
  endif()
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 120 DISCOVERY_MODE PRE_TEST
    PROPERTIES ENVIRONMENT "M3SERVE_BIN_DIR=${CMAKE_BINARY_DIR}/bin"
               LABELS "${labels}")
endfunction()
