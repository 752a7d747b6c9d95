# run_step(what command [args...]): for the ctest scripts that configure and build other
# CMake projects (tests/consumer, tests/add_codec). Runs the command; on failure stops the
# script with its exit code, stdout and stderr; otherwise prints "<what> ok" and leaves
# the command's stdout in STEP_OUTPUT.
function(run_step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc})\n${out}\n${err}")
  endif()
  message(STATUS "${what} ok")
  set(STEP_OUTPUT "${out}" PARENT_SCOPE)
endfunction()
