# Runs one policy script and compares the transcript with its .ref file (Postfix's
# smtpd_check.in/.ref idea). To accept a deliberate change: rerun the command and copy the
# output over the .ref file, after reading the diff.
execute_process(COMMAND ${TOOL} script ${MANIFESTS} ${SCRIPT}
                OUTPUT_VARIABLE actual RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "kuberelay-policy script exited ${rc}")
endif()
file(READ ${REFERENCE} expected)
if(NOT actual STREQUAL expected)
  file(WRITE ${OUTPUT} "${actual}")
  execute_process(COMMAND diff -u ${REFERENCE} ${OUTPUT})
  message(FATAL_ERROR "transcript differs from ${REFERENCE}")
endif()
