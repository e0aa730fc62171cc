# Deployment checks (deploy/, Dockerfile, tools/loadgen): Prometheus rules and
# config, the Grafana dashboard, the Kubernetes manifests, the Dockerfile against
# the local build, and an end-to-end run (servers + Prometheus + load generator).
# Included at the end of tests/CMakeLists.txt. Each test prints SKIPPED and exits
# 77 (ctest SKIP_RETURN_CODE) when its interpreter or tool is missing. Labelled
# no_sanitizer: they check deployment files, so the sanitizer build skips them.

set(HS_DEPLOY_TESTS_DIR ${CMAKE_CURRENT_SOURCE_DIR}/deploy)

# hs_deploy_test(NAME <name> SCRIPT <file.py> [ARGS <arguments...>])
function(hs_deploy_test)
  cmake_parse_arguments(T "" "NAME;SCRIPT" "ARGS" ${ARGN})
  if(HS_TEST_PYTHON)
    add_test(NAME ${T_NAME} COMMAND ${HS_TEST_PYTHON} ${HS_DEPLOY_TESTS_DIR}/${T_SCRIPT} ${T_ARGS})
  else()
    add_test(NAME ${T_NAME} COMMAND sh -c
      "echo 'SKIPPED: HS_TEST_PYTHON is empty; run scripts/python_env.sh and configure with -DHS_TEST_PYTHON=<its output>'; exit 77")
  endif()
  set_tests_properties(${T_NAME} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300
    LABELS "deploy;no_sanitizer")
endfunction()

add_test(NAME deploy_promtool_check
  COMMAND sh ${HS_DEPLOY_TESTS_DIR}/promtool_check.sh ${CMAKE_SOURCE_DIR})
set_tests_properties(deploy_promtool_check PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120
  LABELS "deploy;no_sanitizer")

hs_deploy_test(NAME deploy_dashboard SCRIPT dashboard_test.py)
if(TARGET hybridserve AND TARGET hs_make_tiny_model)
  hs_deploy_test(NAME deploy_loadgen SCRIPT loadgen_test.py
    ARGS --hybridserve $<TARGET_FILE:hybridserve>
         --hs_make_tiny_model $<TARGET_FILE:hs_make_tiny_model>)
  hs_deploy_test(NAME deploy_k8s SCRIPT k8s_test.py
    ARGS --hybridserve $<TARGET_FILE:hybridserve>)
  hs_deploy_test(NAME deploy_dockerfile SCRIPT dockerfile_test.py
    ARGS --hybridserve $<TARGET_FILE:hybridserve>
         --hs_make_tiny_model $<TARGET_FILE:hs_make_tiny_model>)
  hs_deploy_test(NAME deploy_e2e_prometheus SCRIPT e2e_test.py
    ARGS --hybridserve $<TARGET_FILE:hybridserve>
         --hs_make_tiny_model $<TARGET_FILE:hs_make_tiny_model>)
  # Three servers and Prometheus: alone, so that a busy machine does not starve
  # the scrapes.
  set_tests_properties(deploy_e2e_prometheus PROPERTIES RUN_SERIAL TRUE
    LABELS "deploy;no_sanitizer;integration")
else()
  hs_deploy_test(NAME deploy_loadgen SCRIPT loadgen_test.py)
  hs_deploy_test(NAME deploy_k8s SCRIPT k8s_test.py)
  foreach(t deploy_dockerfile deploy_e2e_prometheus)
    add_test(NAME ${t} COMMAND sh -c
      "echo 'SKIPPED: the hybridserve or hs_make_tiny_model target is not part of this build'; exit 77")
    set_tests_properties(${t} PROPERTIES SKIP_RETURN_CODE 77 LABELS "deploy;no_sanitizer")
  endforeach()
endif()
