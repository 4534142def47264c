package org.edgecnn.core

import org.junit.runner.Description
import org.junit.runner.JUnitCore
import org.junit.runner.notification.Failure
import org.junit.runner.notification.RunListener

/**
 * Runs every test class of `core` and prints one machine-readable summary line, so the pytest
 * wrapper can tell passed, failed and skipped tests apart (JUnitCore's own "OK" counts
 * assumption failures as passes).
 */
object RunTests {
    val CLASSES = arrayOf<Class<*>>(
        GoldenTest::class.java, TinyModelTest::class.java, BundleTest::class.java,
        JsonTest::class.java, MetadataTest::class.java, DetectTest::class.java, PreprocessTest::class.java,
        ModelCheckTest::class.java, TrackerTest::class.java, DecodersGoldenTest::class.java
    )

    @JvmStatic
    fun main(args: Array<String>) {
        var skipped = 0
        val perClass = LinkedHashMap<String, Int>()
        val core = JUnitCore()
        core.addListener(object : RunListener() {
            override fun testAssumptionFailure(failure: Failure) { skipped++ }
            override fun testIgnored(description: Description) { skipped++ }
            override fun testFinished(description: Description) {
                val name = description.testClass?.simpleName ?: "?"
                perClass[name] = (perClass[name] ?: 0) + 1
            }
        })
        val result = core.run(*CLASSES)
        for (f in result.failures) {
            System.out.println("FAIL ${f.testHeader}: ${f.message}")
            System.out.println(f.trace.lines().take(12).joinToString("\n"))
        }
        for ((name, n) in perClass) System.out.println("EDGECNN-CORE-CLASS $name $n")
        System.out.println("EDGECNN-CORE-RESULT tests=${result.runCount} failures=${result.failureCount} skipped=$skipped")
        System.exit(if (result.wasSuccessful()) 0 else 1)
    }
}
