# ctest script (cmake -P): runs one gpu test of BINARY with GRADZIP_REQUIRE_GPU=1 and checks
# the variable cannot end in a silent skip. Without a usable device the run must fail and
# name the variable; with one it must pass without any skipped test.
#   cmake -DBINARY=path/to/gradzip_gpu_tests -DFILTER=gtest_filter -P require_gpu.cmake
execute_process(COMMAND ${CMAKE_COMMAND} -E env GRADZIP_REQUIRE_GPU=1 ${BINARY} --gtest_filter=${FILTER}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(out MATCHES "\\[  SKIPPED \\]")
  message(FATAL_ERROR "a gpu test skipped under GRADZIP_REQUIRE_GPU=1\n${out}\n${err}")
endif()
if(NOT out MATCHES "\\[==========\\] 1 test")
  message(FATAL_ERROR "the filter '${FILTER}' did not select exactly one test\n${out}\n${err}")
endif()
if(rc EQUAL 0)
  message(STATUS "a CUDA device is present: the gpu test passed under GRADZIP_REQUIRE_GPU=1")
elseif(out MATCHES "GRADZIP_REQUIRE_GPU=1 but no CUDA device")
  message(STATUS "no CUDA device: GRADZIP_REQUIRE_GPU=1 turned the skip into a failure, as required")
else()
  message(FATAL_ERROR "the gpu test failed for another reason (${rc})\n${out}\n${err}")
endif()
