# Run by ctest (tests/add_codec/CMakeLists.txt) as a script: cmake -DSOURCE_DIR=...
# -DWORK_DIR=... -DGENERATOR=... -DCXX_COMPILER=... [-DCXX_LAUNCHER=...] -P readme_steps.cmake
#
# Follows README.md's "Adding a codec" in a copy of the tree under WORK_DIR/src:
#   1. its ```cpp block becomes the file its first line names (quant/codecs/mycodec.cc);
#   2. its GRADZIP_CODEC(...) row is appended to quant/codecs/codec_list.inc;
# then builds gradzip_quant (-DGRADZIP_CUDA=OFF), tests/add_codec/mycodec_check.cc and
# the registry-wide property and malformed-message suites of tests/quant/ there through
# harness/CMakeLists.txt, and runs them.

include(${CMAKE_CURRENT_LIST_DIR}/../cmake/run_step.cmake)

# Sets ${out} to the text of ${text} after the first `begin`, up to the next `end` (or to
# its end when no `end` follows); stops the script naming `what` when `begin` is missing.
function(text_after out text begin end what)
  string(FIND "${text}" "${begin}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "README.md has no ${what}")
  endif()
  string(LENGTH "${begin}" skip)
  math(EXPR at "${at} + ${skip}")
  string(SUBSTRING "${text}" ${at} -1 rest)
  string(FIND "${rest}" "${end}" stop)
  if(NOT stop EQUAL -1)
    string(SUBSTRING "${rest}" 0 ${stop} rest)
  endif()
  set(${out} "${rest}" PARENT_SCOPE)
endfunction()

# ---- the copy: the top-level CMakeLists.txt, scripts/ and every folder it adds ------------
set(copy ${WORK_DIR}/src)
file(REMOVE_RECURSE ${copy})
file(MAKE_DIRECTORY ${copy})
file(COPY ${SOURCE_DIR}/CMakeLists.txt ${SOURCE_DIR}/scripts DESTINATION ${copy})
file(READ ${SOURCE_DIR}/CMakeLists.txt top)
string(REGEX MATCHALL "add_subdirectory\\([A-Za-z0-9_]+" adds "${top}")
foreach(add IN LISTS adds)
  string(REPLACE "add_subdirectory(" "" dir "${add}")
  file(COPY ${SOURCE_DIR}/${dir} DESTINATION ${copy})
endforeach()

# ---- the README's steps ------------------------------------------------------------------
file(READ ${SOURCE_DIR}/README.md readme)
text_after(section "${readme}" "\n## Adding a codec\n" "\n## " "'## Adding a codec' section")

# Step 1: the code block is the codec file; its first line names the path.
text_after(code "${section}" "```cpp\n" "```\n" "```cpp block in 'Adding a codec'")
if(NOT code MATCHES "^// (quant/codecs/[a-z0-9_]+\\.cc):")
  message(FATAL_ERROR "the README's code block does not start with '// quant/codecs/<name>.cc:'")
endif()
set(codec_file ${CMAKE_MATCH_1})
file(WRITE ${copy}/${codec_file} "${code}")
message(STATUS "step 1: wrote ${codec_file}")

# Step 2: the row goes at the end of the codec list.
if(NOT section MATCHES "\n(GRADZIP_CODEC\\([^\n]*\\))\n")
  message(FATAL_ERROR "no GRADZIP_CODEC(...) row in README.md's 'Adding a codec'")
endif()
set(row ${CMAKE_MATCH_1})
file(APPEND ${copy}/quant/codecs/codec_list.inc "${row}\n")
message(STATUS "step 2: appended '${row}' to quant/codecs/codec_list.inc")

# ---- build and check ---------------------------------------------------------------------
set(build ${WORK_DIR}/build)
set(configure ${CMAKE_COMMAND} -S ${copy}/tests/add_codec/harness -B ${build} -G ${GENERATOR}
  -DGRADZIP_COPY=${copy} -DGRADZIP_CUDA=OFF -DGRADZIP_BUILD_TRAINER=OFF -DGRADZIP_BUILD_TESTS=OFF
  -DGRADZIP_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG=-O0
  -DCMAKE_CXX_COMPILER=${CXX_COMPILER})
if(CXX_LAUNCHER)
  list(APPEND configure -DCMAKE_CXX_COMPILER_LAUNCHER=${CXX_LAUNCHER})
endif()
run_step("configure the copy" ${configure})
run_step("build gradzip_quant, mycodec_check and registry_suite"
  ${CMAKE_COMMAND} --build ${build} --target mycodec_check registry_suite --parallel 2)
execute_process(COMMAND ${build}/mycodec_check RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "mycodec_check failed (exit ${rc})")
endif()
# The registry-wide suites with the added codec: its property cases, and the malformed-
# message tests (which loop over every registered codec).
run_step("registry-wide suites" ${build}/registry_suite "--gtest_filter=*mycodec*:CodecMalformed.*")
if(NOT STEP_OUTPUT MATCHES "CodecProperty[^\n]*mycodec")
  message(FATAL_ERROR "the registry-wide property suite ran no mycodec case:\n${STEP_OUTPUT}")
endif()
