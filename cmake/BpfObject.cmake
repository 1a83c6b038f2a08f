# Turns bpf/NAME.bpf.c into NAME.bpf.o and NAME.skel.h inside the build graph.
#   bpf_object(NAME SOURCE [DEPENDS headers...] [DEFINES D...] [OUT_DIR DIR] [SKEL_NAME S])
#     -> interface target NAME_skel
# The skeleton header lands in ${CMAKE_BINARY_DIR}/bpf/ (or OUT_DIR) as "S.skel.h" (S is
# NAME unless SKEL_NAME says otherwise: a variant built with other DEFINES can keep the
# skeleton's name in a directory of its own); link NAME_skel to get its include path and
# the build-order dependency.

find_program(BPF_CLANG NAMES clang-14 clang REQUIRED)
find_program(BPFTOOL NAMES bpftool PATHS /usr/sbin /usr/local/sbin REQUIRED)

set(PERSONABPF_VMLINUX_DIR ${CMAKE_BINARY_DIR}/vmlinux)
set(PERSONABPF_VMLINUX_H ${PERSONABPF_VMLINUX_DIR}/vmlinux.h)
set(PERSONABPF_KERNEL_BTF /sys/kernel/btf/vmlinux CACHE FILEPATH "BTF that vmlinux.h is generated from")

# vmlinux.h from the running kernel's BTF (scripts/gen-vmlinux.sh does the same by hand).
add_custom_command(
  OUTPUT ${PERSONABPF_VMLINUX_H}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${PERSONABPF_VMLINUX_DIR}
  COMMAND ${BPFTOOL} btf dump file ${PERSONABPF_KERNEL_BTF} format c > ${PERSONABPF_VMLINUX_H}.tmp
  COMMAND ${CMAKE_COMMAND} -E rename ${PERSONABPF_VMLINUX_H}.tmp ${PERSONABPF_VMLINUX_H}
  DEPENDS ${PERSONABPF_KERNEL_BTF}
  COMMENT "Generating vmlinux.h from ${PERSONABPF_KERNEL_BTF}"
  VERBATIM)
add_custom_target(vmlinux_h DEPENDS ${PERSONABPF_VMLINUX_H})

execute_process(COMMAND uname -m OUTPUT_VARIABLE _bpf_uname_m OUTPUT_STRIP_TRAILING_WHITESPACE)
if(_bpf_uname_m STREQUAL "x86_64")
  set(PERSONABPF_BPF_ARCH x86)
elseif(_bpf_uname_m STREQUAL "aarch64")
  set(PERSONABPF_BPF_ARCH arm64)
else()
  set(PERSONABPF_BPF_ARCH ${_bpf_uname_m})
endif()

function(bpf_object name source)
  cmake_parse_arguments(ARG "" "OUT_DIR;SKEL_NAME" "DEPENDS;DEFINES" ${ARGN})
  set(out_dir ${CMAKE_BINARY_DIR}/bpf)
  if(ARG_OUT_DIR)
    set(out_dir ${ARG_OUT_DIR})
  endif()
  set(skel_name ${name})
  if(ARG_SKEL_NAME)
    set(skel_name ${ARG_SKEL_NAME})
  endif()
  set(defines)
  foreach(d ${ARG_DEFINES})
    list(APPEND defines -D${d})
  endforeach()
  set(obj ${out_dir}/${skel_name}.bpf.o)
  set(skel ${out_dir}/${skel_name}.skel.h)
  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${out_dir}
    COMMAND ${BPF_CLANG} -g -O2 -target bpf -D__TARGET_ARCH_${PERSONABPF_BPF_ARCH}
            -Wall -Wno-unused-function -Werror ${defines}
            -I${PERSONABPF_VMLINUX_DIR} -I${CMAKE_SOURCE_DIR}
            -c ${CMAKE_CURRENT_SOURCE_DIR}/${source} -o ${obj}
    DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/${source} ${ARG_DEPENDS} ${PERSONABPF_VMLINUX_H}
    IMPLICIT_DEPENDS C ${CMAKE_CURRENT_SOURCE_DIR}/${source}
    COMMENT "BPF ${name}: ${obj}"
    VERBATIM)
  add_custom_command(
    OUTPUT ${skel}
    COMMAND ${BPFTOOL} gen skeleton ${obj} name ${skel_name} > ${skel}.tmp
    COMMAND ${CMAKE_COMMAND} -E rename ${skel}.tmp ${skel}
    DEPENDS ${obj}
    COMMENT "Skeleton ${skel}"
    VERBATIM)
  add_custom_target(${name}_skel_gen DEPENDS ${skel} ${obj})
  # vmlinux.h comes from a custom command of the top-level directory; Makefile generators
  # order it before this directory's commands only through a target dependency.
  add_dependencies(${name}_skel_gen vmlinux_h)
  add_library(${name}_skel INTERFACE)
  # A source makes the INTERFACE target buildable itself (`--target NAME_skel`).
  target_sources(${name}_skel PRIVATE ${skel})
  target_include_directories(${name}_skel INTERFACE ${out_dir})
  target_link_libraries(${name}_skel INTERFACE PkgConfig::LIBBPF elf z)
  add_dependencies(${name}_skel ${name}_skel_gen)
  set_property(GLOBAL PROPERTY ${name}_BPF_OBJECT ${obj})
endfunction()
