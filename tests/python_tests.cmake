# Tests written in Python, run with the test venv's interpreter (HS_TEST_PYTHON,
# from scripts/python_env.sh). Included at the end of tests/CMakeLists.txt.
# Without an interpreter each test is still registered and reports SKIPPED with
# the reason (exit status 77 = ctest SKIP_RETURN_CODE).

# hs_python_test(NAME <name> ARGS <script and arguments...>)
function(hs_python_test)
  cmake_parse_arguments(T "" "NAME" "ARGS" ${ARGN})
  if(HS_TEST_PYTHON)
    add_test(NAME ${T_NAME} COMMAND ${HS_TEST_PYTHON} ${T_ARGS})
  else()
    add_test(NAME ${T_NAME} COMMAND sh -c
      "echo 'SKIPPED: HS_TEST_PYTHON is empty; run scripts/python_env.sh and configure with -DHS_TEST_PYTHON=<its output>'; exit 77")
  endif()
  set_tests_properties(${T_NAME} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 900 LABELS python)
endfunction()

# Tokenizer vs Hugging Face `tokenizers`: tokenizers of each style trained at test
# time, and the real Llama-3 / Qwen3 / Llama-2 files of the shared test data.
hs_python_test(NAME tokenizer_reference_trained
  ARGS ${CMAKE_CURRENT_SOURCE_DIR}/tokenizer/reference_test.py
       --hs_tokenize $<TARGET_FILE:hs_tokenize> --set trained)
hs_python_test(NAME tokenizer_reference_real
  ARGS ${CMAKE_CURRENT_SOURCE_DIR}/tokenizer/reference_test.py
       --hs_tokenize $<TARGET_FILE:hs_tokenize> --set real
       --testdata ${CMAKE_SOURCE_DIR}/../shared/testdata/tokenizers)

# Integration tests (tests/integration/): the real server binary on a free
# loopback port, driven by hs_client and Python grpcio clients (stubs generated
# from proto/ at test time). Each script skips (77) when grpcio is missing.
set(HS_INTEGRATION_TESTS client errors exactness faults generate lifecycle limits metrics reflection security text)
foreach(t ${HS_INTEGRATION_TESTS})
  if(TARGET hybridserve AND TARGET hs_client)
    hs_python_test(NAME integration_${t}
      ARGS ${CMAKE_CURRENT_SOURCE_DIR}/integration/${t}_test.py
           --hybridserve $<TARGET_FILE:hybridserve>
           --hs_client $<TARGET_FILE:hs_client>
           --hs_make_tiny_model $<TARGET_FILE:hs_make_tiny_model>
           --hs_run_offline $<TARGET_FILE:hs_run_offline>)
  else()
    add_test(NAME integration_${t} COMMAND sh -c
      "echo 'SKIPPED: the hybridserve or hs_client target is not part of this build'; exit 77")
  endif()
  set_tests_properties(integration_${t} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 900
    LABELS "python;integration")
endforeach()
