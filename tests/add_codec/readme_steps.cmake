# Run by ctest (tests/add_codec/CMakeLists.txt) as a script: cmake -DSOURCE_DIR=...
# -DWORK_DIR=... -DGENERATOR=... -DCXX_COMPILER=... [-DCXX_LAUNCHER=...] -P readme_steps.cmake
#
# Follows README.md's "Adding a codec" in a copy of the tree under WORK_DIR/src:
#   1. its ```cpp block becomes the file its first line names (quant/codecs/mycodec.cc);
#   2. its GRADZIP_CODEC(...) row is appended to quant/codecs/codec_list.inc;
# then builds gradzip_quant (-DGRADZIP_CUDA=OFF) and tests/add_codec/mycodec_check.cc
# there through harness/CMakeLists.txt, and runs the check.

function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (exit ${rc}):\n${out}")
  endif()
  message(STATUS "${what}: ok")
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
string(FIND "${readme}" "\n## Adding a codec\n" at)
if(at EQUAL -1)
  message(FATAL_ERROR "README.md has no '## Adding a codec' section")
endif()
math(EXPR at "${at} + 1")
string(SUBSTRING "${readme}" ${at} -1 section)
string(FIND "${section}" "\n## " next)
if(NOT next EQUAL -1)
  string(SUBSTRING "${section}" 0 ${next} section)
endif()

# Step 1: the code block is the codec file; its first line names the path.
string(FIND "${section}" "```cpp\n" begin)
if(begin EQUAL -1)
  message(FATAL_ERROR "no ```cpp block in README.md's 'Adding a codec'")
endif()
math(EXPR begin "${begin} + 7")
string(SUBSTRING "${section}" ${begin} -1 code)
string(FIND "${code}" "```\n" end)
string(SUBSTRING "${code}" 0 ${end} code)
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
run("configure the copy" ${configure})
run("build gradzip_quant and mycodec_check" ${CMAKE_COMMAND} --build ${build} --target mycodec_check --parallel 2)
execute_process(COMMAND ${build}/mycodec_check RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "mycodec_check failed (exit ${rc})")
endif()
