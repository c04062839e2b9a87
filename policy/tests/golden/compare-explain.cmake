# Runs one `kuberelay-policy explain ... --json` (arguments from an .args file: the manifest
# directory on the first line, the options on the second) and compares its output with the
# .json file and its exit status with the name (-allowed: 0, -refused: 1). Golden files keep the
# JSON output stable for tools that parse it.
file(STRINGS ${ARGS_FILE} lines)
list(GET lines 0 manifests)
list(GET lines 1 options)
separate_arguments(options UNIX_COMMAND "${options}")
execute_process(COMMAND ${TOOL} explain ${SOURCE_DIR}/${manifests} ${options} --json
                WORKING_DIRECTORY ${SOURCE_DIR}
                OUTPUT_VARIABLE actual RESULT_VARIABLE rc)
string(REPLACE "${SOURCE_DIR}/" "" actual "${actual}")
if(ARGS_FILE MATCHES "-allowed.args$")
  set(expected_rc 0)
else()
  set(expected_rc 1)
endif()
if(NOT rc EQUAL expected_rc)
  message(FATAL_ERROR "explain exited ${rc}, expected ${expected_rc}:\n${actual}")
endif()
file(READ ${REFERENCE} expected)
if(NOT actual STREQUAL expected)
  file(WRITE ${OUTPUT} "${actual}")
  execute_process(COMMAND diff -u ${REFERENCE} ${OUTPUT})
  message(FATAL_ERROR "explain output differs from ${REFERENCE}")
endif()
