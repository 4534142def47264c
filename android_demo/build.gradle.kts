// Top-level build file: plugin versions live in gradle/libs.versions.toml.
// AGP 9 compiles the app's Kotlin itself (built-in Kotlin); declaring the Kotlin JVM plugin here
// puts that Kotlin Gradle plugin version on the classpath for both modules.
plugins {
    alias(libs.plugins.android.application) apply false
    alias(libs.plugins.kotlin.jvm) apply false
}
