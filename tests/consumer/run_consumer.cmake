# Installs the gradzip build tree into a temporary prefix, configures and builds the
# consumer project against it with find_package(gradzip), and runs the consumer.
# Inputs (-D): GRADZIP_BUILD_DIR, CONSUMER_SOURCE_DIR, WORK_DIR, GENERATOR, CXX_COMPILER,
# CUDA_COMPILER (may be empty).
cmake_minimum_required(VERSION 3.22)

include(${CMAKE_CURRENT_LIST_DIR}/../cmake/run_step.cmake)

file(REMOVE_RECURSE "${WORK_DIR}")
set(prefix "${WORK_DIR}/prefix")
run_step("install" ${CMAKE_COMMAND} --install "${GRADZIP_BUILD_DIR}" --prefix "${prefix}")

set(extra)
if(CUDA_COMPILER)
  list(APPEND extra "-DCMAKE_CUDA_COMPILER=${CUDA_COMPILER}")
endif()
run_step("configure" ${CMAKE_COMMAND} -S "${CONSUMER_SOURCE_DIR}" -B "${WORK_DIR}/build" -G "${GENERATOR}"
  "-DCMAKE_PREFIX_PATH=${prefix}" "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}" -DCMAKE_BUILD_TYPE=Release ${extra})
run_step("build" ${CMAKE_COMMAND} --build "${WORK_DIR}/build")
run_step("run" "${WORK_DIR}/build/gradzip_consumer")
message(STATUS "${STEP_OUTPUT}")
file(REMOVE_RECURSE "${WORK_DIR}")
