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
  # core and imgproc alone: imgcodecs loads some 140 libraries at process
  # start (0.15-0.25 s); the admin tool reaches it through a plugin
  # (ingest/image_codecs.h).
  add_library(m3serve_opencv_core INTERFACE)
  add_library(m3serve::opencv_core ALIAS m3serve_opencv_core)
  target_include_directories(m3serve_opencv_core SYSTEM INTERFACE ${OPENCV_INCLUDE_DIR})
  target_link_libraries(m3serve_opencv_core INTERFACE ${OPENCV_imgproc_LIBRARY} ${OPENCV_core_LIBRARY})
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
               ENVIRONMENT_MODIFICATION "M3SERVE_SOURCE_DIR=set:${PROJECT_SOURCE_DIR}"
               LABELS "${labels}")
endfunction()

# m3serve_add_fuzzer(NAME SOURCES... LIBS ...): a fuzz target (a file defining
# LLVMFuzzerTestOneInput) built as build/fuzz/NAME, with its seed corpus in
# fuzz/corpus/NAME. With M3SERVE_FUZZ=ON (clang) it links libFuzzer and ctest
# runs it for M3SERVE_FUZZ_SECONDS (test Fuzz.NAME, label fuzz); crash inputs
# land in build/fuzz-artifacts/. Otherwise it links the replay driver and
# ctest replays the corpus (test FuzzReplay.NAME, label unit).
set(M3SERVE_FUZZ_SECONDS 30 CACHE STRING "Seconds each fuzz target runs under ctest when M3SERVE_FUZZ=ON")
function(m3serve_add_fuzzer name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS" ${ARGN})
  if(NOT M3SERVE_BUILD_TESTS)
    return()
  endif()
  set(corpus ${CMAKE_SOURCE_DIR}/fuzz/corpus/${name})
  if(NOT IS_DIRECTORY ${corpus})
    message(FATAL_ERROR "fuzz target ${name}: no seed corpus at ${corpus}")
  endif()
  add_executable(${name} ${ARG_SOURCES})
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/fuzz)
  target_link_libraries(${name} PRIVATE ${ARG_LIBS})
  if(M3SERVE_FUZZ)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
    set(work ${CMAKE_BINARY_DIR}/fuzz-work/${name})
    file(MAKE_DIRECTORY ${work} ${CMAKE_BINARY_DIR}/fuzz-artifacts)
    add_test(NAME Fuzz.${name}
      COMMAND ${name} -max_total_time=${M3SERVE_FUZZ_SECONDS} -timeout=10 -rss_limit_mb=2560
              -print_final_stats=1 -artifact_prefix=${CMAKE_BINARY_DIR}/fuzz-artifacts/${name}-
              ${work} ${corpus})
    math(EXPR budget "${M3SERVE_FUZZ_SECONDS} * 3 + 120")
    set_tests_properties(Fuzz.${name} PROPERTIES LABELS fuzz TIMEOUT ${budget})
  else()
    target_link_libraries(${name} PRIVATE m3serve::fuzz_replay)
    add_test(NAME FuzzReplay.${name} COMMAND ${name} ${corpus})
    set_tests_properties(FuzzReplay.${name} PROPERTIES LABELS unit TIMEOUT 300)
  endif()
endfunction()
