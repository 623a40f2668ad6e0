# Small helpers in the spirit of Abseil's AbseilHelpers.cmake: every target of ours gets the
# same warnings and include root; generated code does not. Warnings are errors only where the
# project's own test run asks for it (-DTXN_WERROR=ON, deploy/run-tests.sh): a user's build, at
# any optimisation level, must not fail on a compiler's false positive (GCC 12 at -O3 reports
# -Wrestrict inside std::string).
option(TXN_WERROR "Treat warnings in txcoord's own code as errors" OFF)
set(TXN_WARNINGS -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers
    -Wno-ignored-attributes)  # libbson's aligned bson_t in std::unique_ptr
if(TXN_WERROR)
  list(APPEND TXN_WARNINGS -Werror)
endif()

function(txn_cc_library name)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SRCS})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_compile_options(${name} PRIVATE ${TXN_WARNINGS})
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
endfunction()

function(txn_cc_binary name)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SRCS})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR})
  target_compile_options(${name} PRIVATE ${TXN_WARNINGS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS})
endfunction()

# Unit tests: one binary per test file, registered with ctest under the "unit" label.
function(txn_cc_test name)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SRCS})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR})
  target_compile_options(${name} PRIVATE ${TXN_WARNINGS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS unit TIMEOUT 120)
endfunction()
