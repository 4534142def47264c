// Pure Kotlin/JVM: the post-processing shared with the Python runtime, no Android imports.
// CI compiles the same sources with Debian's kotlinc 1.3 (core/test.sh), so they stay plain Kotlin.
import org.jetbrains.kotlin.gradle.dsl.JvmTarget

plugins {
    alias(libs.plugins.kotlin.jvm)
}

java {
    sourceCompatibility = JavaVersion.VERSION_17
    targetCompatibility = JavaVersion.VERSION_17
}

kotlin {
    compilerOptions {
        jvmTarget.set(JvmTarget.JVM_17)
    }
}

// The golden vectors live in the Python project next to this app (tests/golden).
val golden = rootProject.layout.projectDirectory.dir("../tests/golden")

testing {
    suites {
        val test by getting(JvmTestSuite::class) {
            useJUnit(libs.versions.junit.get())
            targets.all {
                testTask.configure {
                    systemProperty("edgecnn.golden", golden.file("detect_golden.json").asFile.path)
                    systemProperty("edgecnn.tinyModel", golden.file("tiny_detect.tflite").asFile.path)
                    systemProperty("edgecnn.tinyJson", golden.file("tiny_detect.json").asFile.path)
                    systemProperty("edgecnn.trackGolden", golden.file("track_golden.json").asFile.path)
                    systemProperty("edgecnn.decodersGolden", golden.file("decoders_golden.json").asFile.path)
                }
            }
        }
    }
}
