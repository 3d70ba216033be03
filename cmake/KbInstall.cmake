# Install rules, the find_package(kb) config and kb.pc.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)
install(TARGETS kb kb_static EXPORT kbTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY include/kb DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
# kb_deps is an INTERFACE target of imported libraries; kb links it PRIVATE, so a consumer of the
# shared library needs none of it. It still has to be exported for the static archive.
install(TARGETS kb_deps EXPORT kbTargets)
install(EXPORT kbTargets NAMESPACE kb:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/kb)
configure_package_config_file(cmake/kbConfig.cmake.in ${CMAKE_CURRENT_BINARY_DIR}/kbConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/kb)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/kbConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/kbConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/kbConfigVersion.cmake
  cmake/FindcJSON.cmake cmake/FindCBLAS.cmake cmake/FindCUDNN.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/kb)
# what a static link of libkb_static.a needs (the shared libkb.so carries its own dependencies)
set(KB_PC_LIBS_PRIVATE "-lcjson -lopenblas -fopenmp -lm -lpthread")
if(KB_WITH_CUDA)
  string(APPEND KB_PC_LIBS_PRIVATE " -L${CUDAToolkit_LIBRARY_DIR} -lcudart -lcublas -lcurand")
  if(KB_WITH_CUDNN)
    string(APPEND KB_PC_LIBS_PRIVATE " -lcudnn")
  endif()
endif()
configure_file(cmake/kb.pc.in ${CMAKE_CURRENT_BINARY_DIR}/kb.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/kb.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
